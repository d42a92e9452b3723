//! `docs/embedding.md`'s program, compiled here from `examples/embedded.rs` (the guide
//! quotes that file verbatim, which this test checks) and run twice on one directory, as
//! a shop restarts: the second start finds its catalogue and sells again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)] // its `main` is the example's
#[path = "../examples/embedded.rs"]
mod embedded;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_program_runs_twice_on_one_directory() {
    let dir = tempfile::tempdir().unwrap();
    let first = embedded::run(dir.path()).await.unwrap();
    assert_eq!(first.registered, 2);
    assert_eq!(first.mugs_on_hand, 98);
    let second = embedded::run(dir.path()).await.unwrap();
    assert_eq!(
        second.registered, 0,
        "the catalogue was found, not registered again"
    );
    assert_eq!(second.mugs_on_hand, 96);
}

#[test]
fn the_guide_quotes_the_program_as_it_is() {
    let guide = include_str!("../../../docs/embedding.md");
    let program = include_str!("../examples/embedded.rs");
    assert!(
        guide.contains(program.trim_end()),
        "docs/embedding.md must quote examples/embedded.rs verbatim"
    );
}
