//! The EventStoreDB backend's tests in one binary: the shared conformance suite against a
//! live server (only when `STOCKADE_ESDB_URL` is set), and everything that needs none.

mod conformance;
mod without_a_server;
