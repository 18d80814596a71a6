//! The one list of checks. Add a check here and it runs everywhere: in `run_all`, in `CHECKS` and
//! in every backend's `conformance_tests!`.

/// Calls `$m!(<prefix> ; check, check, …)` with every check's name. Internal.
#[macro_export]
#[doc(hidden)]
macro_rules! __with_checks {
    ($m:ident ! ($($pre:tt)*)) => {
        $crate::$m! {$($pre)* ;
            path_rules_enforced,
            create_persistent_and_read_back,
        }
    };
}

/// Expands to one `#[tokio::test]` per conformance check, each calling the check with the factory
/// that `$factory` evaluates to (evaluated inside each test, in an async context, so it may
/// `.await`). The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
///
/// ```ignore
/// mod conformance {
///     menagerie_core::conformance_tests!(menagerie_native::NativeFactory::new());
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__with_checks!(__conformance_tests_impl!($factory));
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __conformance_tests_impl {
    ($factory:expr ; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let factory = $factory;
                $crate::conformance::$name(&factory).await;
            }
        )*
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __conformance_names {
    (; $($name:ident),* $(,)?) => {
        [$(stringify!($name)),*]
    };
}

#[macro_export]
#[doc(hidden)]
macro_rules! __conformance_run_all {
    ($factory:ident ; $($name:ident),* $(,)?) => {
        $(
            tracing::info!(check = stringify!($name), "conformance check");
            $crate::conformance::$name($factory).await;
        )*
    };
}
