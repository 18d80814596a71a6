//! The whole conformance kit against a real 3-member etcd cluster (Debian's `etcd-server`):
//! sessions are balanced over the members, so a session's reads and watches may come from a
//! member other than the one that took a write.

menagerie_core::conformance_tests!(menagerie_integration::etcd::cluster_kit_factory());
