//! The store conformance suite against a live EventStoreDB (`STOCKADE_ESDB_URL`); without
//! one, every case passes at once and the run prints that the suite was skipped.

stockade_store::conformance_suite!(|| async {
    stockade_esdb::testkit::live_store("conformance suite")
        .await
        .map(stockade_store::testkit::Fixture::new)
});
