//! Every recipe test on the native backend with persistent watches hidden, so caches, config
//! watches and discovery run on re-armed one-shot watches (the path for backends without them).

menagerie_recipes::recipe_tests!(menagerie_recipes::testkit::OneShotOnly(
    menagerie_native::NativeFactory::new()
));
