//! The shared conformance suite on a live PostgreSQL (`STOCKADE_PG_URL`; skipped, saying
//! so, without one), and what only a log shared by several nodes can get wrong: the gap
//! a late commit leaves in a subscription, two nodes fenced on one stream, and the
//! shared idempotency table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use stockade_postgres::testkit::{fresh_schema, live_url};
use stockade_postgres::{PgConfig, PostgresStore};
use stockade_store::testkit::{Fixture, append_at_end, event, stream};
use stockade_store::{EventStore, ExpectedRevision, Position, StoreError};

stockade_store::conformance_suite!(|| async {
    stockade_postgres::testkit::live_store("conformance suite")
        .await
        .map(Fixture::new)
});

/// Several stores ("nodes") on one schema.
async fn nodes(n: usize) -> Option<Vec<PostgresStore>> {
    let url = live_url("multi-node cases")?;
    let schema = fresh_schema();
    let mut nodes = Vec::new();
    // Opened together: the schema set-up must take turns, not fail.
    let opened = futures::future::join_all(
        (0..n).map(|_| PostgresStore::connect(PgConfig::new(url.clone()).schema(schema.clone()))),
    )
    .await;
    for store in opened {
        nodes.push(store.expect("connect a node"));
    }
    Some(nodes)
}

/// Four nodes, each with 16 concurrent appenders over 8 shared streams, while a
/// subscriber on a fifth store follows the log live. Every acknowledged event must reach
/// the subscriber, in position order with no gap, and each stream's revisions must be
/// 0, 1, 2, ... with no duplicate: the head lock is what makes a commit that took its
/// positions later also become visible later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_subscriber_sees_every_event_of_concurrent_nodes_in_order_without_gaps() {
    let Some(mut stores) = nodes(5).await else {
        return;
    };
    let watcher = stores.pop().unwrap();
    const PER_TASK: usize = 25;
    const TASKS_PER_NODE: usize = 16;
    let total = stores.len() * TASKS_PER_NODE * PER_TASK;
    let mut sub = watcher.subscribe_all(Position::START);
    let follow = tokio::spawn(async move {
        let mut seen = Vec::with_capacity(total);
        while seen.len() < total {
            let next = tokio::time::timeout(Duration::from_secs(30), sub.next())
                .await
                .expect("the subscription stalled")
                .expect("the subscription ended")
                .expect("the subscription failed");
            seen.push(next);
        }
        seen
    });
    let mut tasks = Vec::new();
    for (n, store) in stores.iter().enumerate() {
        for t in 0..TASKS_PER_NODE {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..PER_TASK {
                    let s = stream(&format!("sku-{}", (n + t + i) % 8));
                    let e = event(&format!("n{n}t{t}i{i}"));
                    let r = append_at_end(&store, &s, &e).await;
                    acked.push((r.position, e.event_id));
                }
                acked
            }));
        }
    }
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    let seen = follow.await.unwrap();
    let positions: Vec<u64> = seen.iter().map(|e| e.position.commit).collect();
    assert_eq!(
        positions,
        (1..=total as u64).collect::<Vec<_>>(),
        "the live subscriber skipped or repeated a position"
    );
    let delivered: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    for (position, id) in &acked {
        assert!(
            delivered.contains(id),
            "acknowledged event at {position} never delivered"
        );
    }
    let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in &seen {
        per_stream
            .entry(e.stream.to_string())
            .or_default()
            .push(e.revision);
    }
    for (s, revisions) in per_stream {
        assert_eq!(
            revisions,
            (0..revisions.len() as u64).collect::<Vec<_>>(),
            "{s}"
        );
    }
    let stats: u64 = stores.iter().map(|s| s.stats().commits).sum();
    eprintln!("{total} appends from 4 nodes in {stats} commits");
}

/// Two nodes write one stream with exact expectations: the one that read an older
/// revision is refused, whichever node it is on, and a retry of an append that landed
/// through the other node is recognised as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_are_fenced_on_one_stream_and_retries_cross_nodes() {
    let Some(stores) = nodes(2).await else {
        return;
    };
    let (a, b) = (&stores[0], &stores[1]);
    let s = stream("sku-HOT");
    let first = event("first");
    let landed = a
        .append(&s, ExpectedRevision::NoStream, vec![first.clone()])
        .await
        .unwrap();
    // B still believes the stream is empty: fenced.
    match b
        .append(&s, ExpectedRevision::NoStream, vec![event("b")])
        .await
    {
        Err(StoreError::Conflict { .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The same event retried through B is the one already written.
    let retried = b
        .append(&s, ExpectedRevision::NoStream, vec![first])
        .await
        .unwrap();
    assert!(retried.deduplicated);
    assert_eq!(retried.position, landed.position);
    // B's subscription is woken by A's commit (LISTEN), not only by its own.
    let mut sub = b.subscribe_all(landed.position);
    let (next, _) = tokio::join!(
        tokio::time::timeout(Duration::from_millis(800), sub.next()),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            a.append(&s, ExpectedRevision::Exact(0), vec![event("second")])
                .await
                .unwrap();
        }
    );
    let next = next
        .expect("B heard of A's commit within 0.8 s (the poll is 1 s)")
        .unwrap()
        .unwrap();
    assert_eq!(next.revision, 1);
}

/// The idempotency table is one for all nodes: the first digest wins a key wherever the
/// retry lands, a different body under it is refused on every node, and an expired key
/// is free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_keys_are_shared_by_every_node() {
    let Some(stores) = nodes(2).await else {
        return;
    };
    let (a, b) = (stores[0].request_keys(), stores[1].request_keys());
    let day = 86_400_000;
    let t = 1_700_000_000_000;
    assert!(a.check("web", "k1", b"body-1", t, day).await.unwrap());
    assert!(b.check("web", "k1", b"body-1", t + 5, day).await.unwrap());
    assert!(!b.check("web", "k1", b"body-2", t + 5, day).await.unwrap());
    assert!(!a.check("web", "k1", b"body-2", t + 5, day).await.unwrap());
    assert!(b.check("pos", "k1", b"body-2", t, day).await.unwrap());
    assert!(
        b.check("web", "k1", b"body-2", t + day + 1, day)
            .await
            .unwrap()
    );
    // Racing nodes: exactly one body owns a fresh key.
    let racers = (0..40).map(|i| {
        let table = if i % 2 == 0 { a.clone() } else { b.clone() };
        async move {
            let body: &[u8] = if i % 4 < 2 { b"x" } else { b"y" };
            (
                body,
                table.check("web", "race", body, t, day).await.unwrap(),
            )
        }
    });
    let outcomes = futures::future::join_all(racers).await;
    let winners: HashSet<&[u8]> = outcomes.iter().filter(|o| o.1).map(|o| o.0).collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
}

/// The roles docs/operations.md gives, run as written there (with names of this test's
/// own): an owner that holds only its schema creates the tables, and a node then runs
/// as an application role with row rights only: appends, reads, a live subscription,
/// snapshots and the shared idempotency keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_runs_with_the_documented_roles() {
    let Some(url) = live_url("roles case") else {
        return;
    };
    let guide = include_str!("../../../docs/operations.md");
    let start = guide
        .find("-- stockade roles")
        .expect("the roles in the guide");
    let end = start + guide[start..].find("```").expect("their end");
    let tag = &fresh_schema()[2..12];
    let (owner, app, schema) = (
        format!("t_own_{tag}"),
        format!("t_app_{tag}"),
        fresh_schema(),
    );
    let sql = |text: &str| {
        text.replace("stockade_owner", &owner)
            .replace("stockade_app", &app)
            .replace("stockade", &schema)
    };
    let (owner_sql, rest) = guide[start..end]
        .split_once("-- start one node once")
        .expect("the guide says when to start the first node");
    // The grants follow that comment's line.
    let app_sql = rest.split_once('\n').map_or("", |(_, grants)| grants);
    let pg: tokio_postgres::Config = url.parse().unwrap();
    let as_role = |role: &str| {
        let host = match &pg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let db = pg.get_dbname().unwrap_or("postgres");
        // CI's throwaway server trusts loopback; elsewhere the guide's passwords apply.
        let password = if role == owner {
            "change-me-owner"
        } else {
            "change-me-app"
        };
        PgConfig::new(format!(
            "host={host} port={port} dbname={db} user={role} password={password}"
        ))
        .schema(schema.clone())
    };
    let (admin, connection) = pg.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    admin.batch_execute(&sql(owner_sql)).await.unwrap();
    // The first start, as the owner, creates the tables; its grants follow.
    let first = PostgresStore::connect(as_role(&owner)).await.unwrap();
    drop(first);
    let (as_owner, connection) = as_role(&owner)
        .validate()
        .unwrap()
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    as_owner.batch_execute(&sql(app_sql)).await.unwrap();

    let node = PostgresStore::connect(as_role(&app)).await.unwrap();
    let s = stream("sku-ROLE");
    let mut sub = node.subscribe_all(Position::START);
    node.append(&s, ExpectedRevision::NoStream, vec![event("a")])
        .await
        .unwrap();
    let seen = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(seen.revision, 0);
    node.save_snapshot(
        &s,
        stockade_store::Snapshot {
            revision: 0,
            data: vec![1],
        },
    )
    .await
    .unwrap();
    assert!(node.load_snapshot(&s).await.unwrap().is_some());
    assert_eq!(node.streams_with_open_subjects().await.unwrap(), vec![]);
    let keys = node.request_keys();
    assert!(keys.check("web", "k", b"x", 1_000, 10).await.unwrap());
    // Past retention: the expired key is taken over (an UPDATE), and pruning may DELETE.
    assert!(keys.check("web", "k", b"y", 1_000_000, 10).await.unwrap());
    drop(sub);
    drop(node);
    drop(as_owner);
    admin
        .batch_execute(&format!(
            "DROP SCHEMA {schema} CASCADE; DROP OWNED BY {app}; DROP ROLE {app}; \
             DROP OWNED BY {owner}; DROP ROLE {owner};"
        ))
        .await
        .unwrap();
}

/// Appends queued together share one transaction, and each is decided against what the
/// ones before it in that transaction wrote: a stream's next append expecting the first
/// one's revision lands after it, and a retry queued beside its original is recognised
/// from the rows not yet committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_queued_together_see_each_other_in_their_transaction() {
    let Some(stores) = nodes(1).await else {
        return;
    };
    let store = &stores[0];
    let mut together = 0;
    for round in 0..20 {
        let s = stream(&format!("sku-GROUP-{round}"));
        let (first, second) = (event("first"), event("second"));
        let before = store.stats().commits;
        let (a, b, retry, next) = tokio::join!(
            store.append(&s, ExpectedRevision::NoStream, vec![first.clone()]),
            store.append(&s, ExpectedRevision::NoStream, vec![second.clone()]),
            store.append(&s, ExpectedRevision::NoStream, vec![first.clone()]),
            store.append(&s, ExpectedRevision::Exact(0), vec![event("third")]),
        );
        let commits = store.stats().commits - before;
        let (a, retry) = (a.unwrap(), retry.unwrap());
        // Queued in this order, whatever the grouping: the first append wins revision 0,
        // the other first append is refused, the retry is recognised as written.
        assert!(!a.deduplicated, "round {round}: {a:?}");
        assert!(
            matches!(b, Err(StoreError::Conflict { .. })),
            "round {round}: {b:?}"
        );
        assert!(retry.deduplicated, "round {round}: {retry:?}");
        assert_eq!(retry.position, a.position, "round {round}");
        let stored = store.read_stream(&s, 0, 10).await.unwrap();
        assert_eq!(stored[0].event_id, first.event_id, "round {round}");
        if commits == 1 {
            // All four in one transaction: the append expecting revision 0 saw the first.
            together += 1;
            assert_eq!(next.unwrap().revision, 1, "round {round}");
            assert_eq!(stored.len(), 2, "round {round}");
        }
    }
    eprintln!("{together} of 20 rounds were decided in one transaction");
}
