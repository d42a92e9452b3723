//! The `stockade` binary driven as users run it: one module per command or behaviour, in
//! one test binary (each used to be a binary of its own, linking the whole stack again).

mod crash_under_load;
mod mcp_stdio;
mod multichannel;
mod operator_tools;
mod serve;
mod simulate_flash_sale;
mod three_nodes;

/// A port on loopback that nothing listens on now: bound, read, released. A test binds it
/// next (a node that must keep its port across a restart) or expects it refused.
#[allow(clippy::unwrap_used)]
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
