//! The black-box scenarios: one module per behaviour, all in one test binary.
//!
//! Each module was its own integration-test binary once, and each of those linked the
//! whole stack (engine, store, server, MCP) again: forty links per build. One binary links
//! it once. A scenario that re-runs this binary as a child process names its test by
//! [`child_test`], so the name stays right wherever the module sits.

mod acknowledged_appends_survive_process_abort;
mod acknowledged_appends_survive_reopen;
mod adjustments_with_an_expected_version;
mod backorders_fill_first_in_first_out;
mod bad_input_is_a_typed_rejection;
mod concurrent_buyers_never_oversell;
mod concurrent_runs_are_linearizable;
mod corrupt_records_read_back_are_typed_errors;
mod dashboard_in_a_browser;
mod disk_full_and_read_only;
mod expiry_with_a_manual_clock;
mod fair_selling_limits_and_waitlist;
mod fuzz_targets_on_random_inputs;
mod history_is_found_in_the_log;
mod http_access_holds_against_attackers;
mod http_admin_endpoints;
mod http_api_serves_every_endpoint_by_role;
mod http_backorders_and_receipts;
mod http_bad_input_is_a_4xx_json_error;
mod http_bulk_import_and_export;
mod http_fair_selling;
mod http_graceful_shutdown_keeps_every_acknowledged_hold;
mod http_idempotency_keys_survive_a_restart;
mod http_kits;
mod http_live_push_over_sse_and_websocket;
mod http_locations;
mod http_overload_is_answered_at_once;
mod http_reservation_lifecycle;
mod http_reservations_lapse_at_their_ttl;
mod idempotent_retries;
mod kits_and_locations_in_the_read_models;
mod kits_are_held_as_their_components;
mod mcp_over_http;
mod mcp_with_the_official_python_sdk;
mod notices_reach_live_subscribers;
mod on_eventstoredb;
mod on_postgres;
mod orders_are_all_or_nothing;
mod projector_killed_mid_stream_resumes_exactly_once;
mod projector_with_a_tiny_cache_projects_the_same;
mod reconciliation_repairs_drift_and_applies_counts;
mod reservations_change_while_held;
mod snapshots_passivation_and_overload;
mod store_faults_lose_nothing;
mod storefront_indicator_in_a_browser;
mod the_operations_pack_is_checked;
mod the_wal_is_checkpointed_beside_the_writer;
mod the_webhook_guide_verifies_real_deliveries;
mod two_engines_on_one_file_are_fenced;
mod two_handles_on_one_file_are_fenced;
mod webhooks_retry_then_dead_letter;

/// The name libtest gives the test `test` of the module whose `module_path!()` is
/// `module`, as `--exact` wants it: the module path without the crate's name.
fn child_test(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_, path)) => format!("{path}::{test}"),
        None => test.to_owned(),
    }
}
