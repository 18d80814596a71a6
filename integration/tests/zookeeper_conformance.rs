//! The whole conformance kit against a real standalone ZooKeeper 3.8 (one server shared by the
//! tests of this binary). `MENAGERIE_TEST_LOG=debug` prints the backend's tracing.

use menagerie_integration::zookeeper::{kit_factory, shared_standalone};

menagerie_core::conformance_tests!(kit_factory(shared_standalone()));
