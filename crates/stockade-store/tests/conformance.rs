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
    use async_trait::async_trait;
    use stockade_store::testkit::Fixture;
    use stockade_store::{
        AppendResult, EventData, EventStore, ExpectedRevision, MemoryStore, Position,
        RecordedEvent, Snapshot, StoreError, StreamName, Subscription,
    };

    #[derive(Debug, Default)]
    struct Unindexed(MemoryStore);

    #[async_trait]
    impl EventStore for Unindexed {
        async fn append(
            &self,
            stream: &StreamName,
            expected: ExpectedRevision,
            events: Vec<EventData>,
        ) -> Result<AppendResult, StoreError> {
            self.0.append(stream, expected, events).await
        }
        async fn read_stream(
            &self,
            stream: &StreamName,
            from: u64,
            max: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.0.read_stream(stream, from, max).await
        }
        async fn read_all(
            &self,
            after: Position,
            max: usize,
        ) -> Result<Vec<RecordedEvent>, StoreError> {
            self.0.read_all(after, max).await
        }
        async fn head(&self) -> Result<Position, StoreError> {
            self.0.head().await
        }
        fn subscribe_all(&self, after: Position) -> Subscription {
            self.0.subscribe_all(after)
        }
        async fn save_snapshot(
            &self,
            stream: &StreamName,
            snapshot: Snapshot,
        ) -> Result<(), StoreError> {
            self.0.save_snapshot(stream, snapshot).await
        }
        async fn load_snapshot(&self, stream: &StreamName) -> Result<Option<Snapshot>, StoreError> {
            self.0.load_snapshot(stream).await
        }
    }

    stockade_store::conformance_suite!(|| async { Fixture::new(Unindexed::default()) });
}
