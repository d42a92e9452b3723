//! Many buyers racing for few units get exactly as many reservations as there are units,
//! and every acknowledged reservation is in the log after the store is reopened.
//! (The scenarios live in `stockade_tests::scenarios`, shared with the EventStoreDB run.)

use stockade_tests::backend::Backend;
use stockade_tests::scenarios;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_on_one_unit_make_exactly_one_reservation() {
    scenarios::a_thousand_buyers_on_one_unit(&Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_buyers_on_the_last_unit_at_each_location_hold_one_there_each() {
    scenarios::a_thousand_buyers_on_the_last_unit_at_each_location(&Backend::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_buyers_on_a_hundred_units_over_ten_skus_keep_exactly_a_hundred() {
    scenarios::ten_thousand_buyers_on_ten_skus_then_a_restart(&Backend::sqlite()).await;
}
