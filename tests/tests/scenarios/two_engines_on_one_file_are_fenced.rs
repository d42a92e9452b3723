//! Two engines on one SQLite file (two nodes sharing a store) contend on the same SKU: the
//! expected-revision fence makes the loser of each race re-read and decide again, so the
//! SKU is never oversold and both keep serving.

use stockade_tests::backend::Backend;
use stockade_tests::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_file_never_oversell() {
    scenarios::two_engines_on_one_log_never_oversell(&Backend::sqlite()).await;
}
