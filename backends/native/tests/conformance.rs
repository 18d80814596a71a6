//! The whole conformance kit against the embedded native backend.

menagerie_core::conformance_tests!(menagerie_native::NativeFactory::new());
