//! The conformance suite on every backend built in this crate.

mod memory {
    use stockade_store::MemoryStore;
    use stockade_store::testkit::Fixture;

    stockade_store::conformance_suite!(|| async { Fixture::new(MemoryStore::new()) });
}

mod sqlite {
    stockade_store::conformance_suite!(|| async { stockade_store::testkit::sqlite_fixture() });
}
