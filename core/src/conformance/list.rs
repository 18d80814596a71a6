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
            sequential_create_may_end_with_slash,
            create_modes_report_path_and_owner,
            data_round_trips,
            missing_nodes_are_no_node,
            create_under_missing_parent_is_no_node,
            create_existing_is_node_exists,
            no_children_for_ephemerals,
            children_are_listed_sorted,
            set_updates_stat,
            versioned_set_checks_version,
            versioned_delete_checks_version,
            delete_with_children_is_not_empty,
            delete_checks_version_before_emptiness,
            parent_stat_tracks_children,
            zxids_increase_across_writes,
            stat_times_are_wall_clock_millis,
            data_limit_enforced,
            sync_makes_other_sessions_writes_visible,
            sequence_starts_at_zero_in_fresh_parent,
            sequence_suffix_appended_to_name_as_given,
            sequence_counts_every_child_create,
            sequence_not_reused_after_delete,
            sequence_skips_failed_creates,
            sequence_restarts_in_recreated_parent,
            sequence_ordering_helper_on_real_names,
            multi_applies_all_with_results,
            multi_failure_applies_nothing,
            multi_failure_index_is_first_failing_op,
            multi_check_op_versions,
            multi_create_then_delete_same_node,
            multi_is_one_atomic_step,
            multi_failure_consumes_no_sequence,
            multi_fires_watches,
            multi_respects_ephemeral_rules,
            ephemeral_owner_is_creator_session,
            ephemerals_deleted_on_close,
            closed_handle_refuses_calls,
            watches_end_when_session_closes,
            closing_one_session_leaves_others_alone,
            ephemerals_deleted_on_expiry,
            expiry_reports_expired_then_new_session,
            watches_end_when_session_expires,
            exists_watch_fires_on_create,
            exists_watch_fires_on_set_and_delete,
            data_watch_fires_on_set,
            data_watch_fires_on_delete,
            data_watch_ignores_child_changes,
            child_watch_fires_on_child_create_and_delete,
            child_watch_fires_on_node_delete,
            child_watch_ignores_data_changes,
            watch_fires_once,
            watch_fires_for_other_sessions_changes,
            every_watch_on_a_path_fires,
            watch_event_precedes_new_data,
            unrelated_changes_do_not_fire,
            persistent_watch_sees_node_and_child_events,
            recursive_watch_sees_subtree_without_child_events,
            persistent_watch_can_be_dropped,
            persistent_and_oneshot_watches_coexist,
            chroot_paths_are_relative,
            chroots_are_isolated,
            chroot_sequential_root_create_stays_inside,
            ensure_path_creates_ancestors,
            create_all_creates_parents,
            delete_all_removes_subtree,
            create_protected_name_format,
            container_reaped_after_last_child,
            ttl_node_expires,
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
