//! The conformance suite on every backend built in this crate.

mod memory {
    use stockade_store::MemoryStore;
    use stockade_store::testkit::Fixture;

    stockade_store::conformance_suite!(|| async { Fixture::new(MemoryStore::new()) });
}

mod sqlite {
    stockade_store::conformance_suite!(|| async { stockade_store::testkit::sqlite_fixture() });
}

/// A backend without indexes (as EventStoreDB is to the port): only the required methods,
/// so the history lookups run on the port's scanning defaults.
mod scanning {
    use std::sync::Arc;

    use stockade_store::MemoryStore;
    use stockade_store::testkit::{Fixture, Unindexed};

    stockade_store::conformance_suite!(|| async {
        Fixture::new(Unindexed(Arc::new(MemoryStore::new())))
    });
}
