//! Every recipe test (locks, election, queue, barriers, caches, config, discovery, balancing)
//! against a real single-node etcd.

menagerie_recipes::recipe_tests!(menagerie_integration::etcd::kit_factory());
