//! The whole conformance kit against a real single-node etcd (Debian's `etcd-server`, started by
//! the test binary on free loopback ports; one server shared by every check, each check in its
//! own key prefix).

menagerie_core::conformance_tests!(menagerie_integration::etcd::kit_factory());
