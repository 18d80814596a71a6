//! Coordination recipes over menagerie-core. The recipes land with their issues.
