//! The whole conformance kit against a real 3-node ZooKeeper 3.8 ensemble (shared by the
//! tests of this binary). `MENAGERIE_TEST_LOG=debug` prints the backend's tracing.

use menagerie_integration::zookeeper::{kit_factory, shared_ensemble};

menagerie_core::conformance_tests!(kit_factory(shared_ensemble()));
