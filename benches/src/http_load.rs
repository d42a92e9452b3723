//! A closed-loop HTTP/1.1 load generator: `connections` keep-alive connections, each
//! sending one request and reading its whole answer before sending the next, until
//! `total` requests are answered. It speaks just enough HTTP (a `Content-Length` body,
//! no chunking) to cost the client as little as possible, so that on a 2-core machine the
//! cores go to the server under test.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to send.
#[derive(Debug, Clone)]
pub struct Load {
    pub addr: SocketAddr,
    /// The whole request, bytes on the wire (it must ask for keep-alive).
    pub request: Vec<u8>,
    pub connections: usize,
    pub total: u64,
}

/// What came back.
#[derive(Debug, Default)]
pub struct Outcome {
    pub elapsed: Duration,
    /// Per request, write to last byte of the answer.
    pub latencies_us: Vec<u64>,
    /// Answers by status.
    pub statuses: BTreeMap<u16, u64>,
}

/// A `POST` with a JSON body and a bearer token.
pub fn post(addr: SocketAddr, path: &str, token: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Runs `load` on the current runtime. Every connection is opened first; the clock
/// starts when the last one is up, so `elapsed` measures requests, not connecting.
pub async fn run(load: Load) -> io::Result<Outcome> {
    let mut streams = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        let stream = TcpStream::connect(load.addr).await?;
        stream.set_nodelay(true)?;
        streams.push(stream);
    }
    let next = Arc::new(AtomicU64::new(0));
    let request: Arc<[u8]> = load.request.into();
    let total = load.total;
    let started = Instant::now();
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|stream| {
            let (next, request) = (next.clone(), request.clone());
            tokio::spawn(async move { connection(stream, &request, &next, total).await })
        })
        .collect();
    let mut outcome = Outcome::default();
    for task in tasks {
        let (latencies, statuses) = task.await.map_err(io::Error::other)??;
        outcome.latencies_us.extend(latencies);
        for (status, n) in statuses {
            *outcome.statuses.entry(status).or_default() += n;
        }
    }
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

type Tally = (Vec<u64>, BTreeMap<u16, u64>);

async fn connection(
    mut stream: TcpStream,
    request: &[u8],
    next: &AtomicU64,
    total: u64,
) -> io::Result<Tally> {
    let mut latencies = Vec::new();
    let mut statuses = BTreeMap::new();
    let mut buffer = Vec::with_capacity(4096);
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let sent = Instant::now();
        stream.write_all(request).await?;
        let (status, _) = read_answer(&mut stream, &mut buffer).await?;
        latencies.push(sent.elapsed().as_micros() as u64);
        *statuses.entry(status).or_default() += 1;
    }
    Ok((latencies, statuses))
}

/// Reads one answer (status line, headers, `Content-Length` body) from the front of
/// `buffer`, reading more as needed; returns its status and body and drains them.
pub async fn read_answer(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> io::Result<(u16, Vec<u8>)> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let (status, length) = parse_head(&buffer[..end])?;
            let whole = end + 4 + length;
            while buffer.len() < whole {
                fill(stream, buffer).await?;
            }
            let body = buffer[end + 4..whole].to_vec();
            buffer.drain(..whole);
            return Ok((status, body));
        }
        fill(stream, buffer).await?;
    }
}

/// The status and `Content-Length` of a response head.
fn parse_head(head: &[u8]) -> io::Result<(u16, usize)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let head = std::str::from_utf8(head).map_err(|_| bad("head not UTF-8"))?;
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())
                .flatten()
        })
        .unwrap_or(0);
    Ok((status, length))
}

async fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    let n = stream.read(&mut chunk).await?;
    if n == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ));
    }
    buffer.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// One request on a fresh connection: the status and the body.
pub async fn once(addr: SocketAddr, request: &[u8]) -> io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let (status, body) = read_answer(&mut stream, &mut Vec::new()).await?;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A `GET` with a bearer token.
pub fn get(addr: SocketAddr, path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}
