//! The `stockade` binary driven as users run it: one module per command or behaviour, in
//! one test binary (each used to be a binary of its own, linking the whole stack again).

mod crash_under_load;
mod mcp_stdio;
mod multichannel;
mod operator_tools;
mod serve;
mod simulate_flash_sale;
mod three_nodes;
