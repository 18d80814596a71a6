//! Every recipe test against the embedded native backend.

menagerie_recipes::recipe_tests!(menagerie_native::NativeFactory::new());
