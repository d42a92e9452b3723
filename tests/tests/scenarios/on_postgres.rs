//! The engine's concurrency scenarios against a live PostgreSQL (`STOCKADE_PG_URL`, which
//! `.ci/run` starts), each in its own schema. Without a server they pass at once, and the run prints
//! that they were skipped.

use stockade_tests::backend::Backend;
use stockade_tests::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_on_one_unit() {
    if let Some(backend) = Backend::live_postgres() {
        scenarios::a_thousand_buyers_on_one_unit(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_on_the_last_unit_at_each_location() {
    if let Some(backend) = Backend::live_postgres() {
        scenarios::a_thousand_buyers_on_the_last_unit_at_each_location(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_buyers_on_ten_skus_then_a_restart() {
    if let Some(backend) = Backend::live_postgres() {
        scenarios::ten_thousand_buyers_on_ten_skus_then_a_restart(&backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_stream_are_fenced() {
    if let Some(backend) = Backend::live_postgres() {
        scenarios::two_engines_on_one_log_never_oversell(&backend).await;
    }
}
