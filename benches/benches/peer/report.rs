//! The comparison as people read it: a Markdown table and an SVG chart, headed by the
//! machine and the versions measured.

use super::*;
use crate::strategy::{Reply, Resp, pg};

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(String::new, |kb| format!(", {} GiB", kb / 1024 / 1024));
    format!("{cores} cores ({cpu}){mem}")
}

pub(crate) async fn versions(s: &Settings) -> String {
    let pg = match pg(&s.pg_url).await {
        Ok(c) => c
            .query_one("SHOW server_version", &[])
            .await
            .map(|r| r.get::<_, String>(0))
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    let redis = match Resp::connect(&s.redis_addr).await {
        Ok(mut r) => match r.call(&["INFO", "server"]).await {
            Ok(Reply::Text(info)) => info
                .lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .unwrap_or_default()
                .to_owned(),
            _ => String::new(),
        },
        Err(_) => String::new(),
    };
    format!("PostgreSQL {pg} (fsync, synchronous_commit on), Redis {redis} (appendfsync always)")
}

pub(crate) fn table(cells: &[Cell]) -> String {
    let mut t = String::from(
        "| strategy | buyers | reservations/s | p50 ms | p99 ms | oversold | ledger | vs Stockade |\n\
         |---|---:|---:|---:|---:|---:|---|---:|\n",
    );
    for c in cells {
        let _ = writeln!(
            t,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            c.strategy,
            c.concurrency,
            c.reservations_per_second,
            c.p50_ms,
            c.p99_ms,
            c.oversold,
            if c.ledger_agrees { "agrees" } else { "DIFFERS" },
            c.vs_stockade
                .map_or_else(|| "—".into(), |r| format!("{r:.3}×")),
        );
    }
    t
}

/// Throughput against concurrency, both on log scales, one line per strategy.
pub(crate) fn chart(cells: &[Cell], concurrency: &[usize], title: &str) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 440.0, 70.0, 190.0, 40.0, 50.0);
    let max = cells
        .iter()
        .map(|c| c.reservations_per_second)
        .fold(1.0, f64::max);
    let min = cells
        .iter()
        .map(|c| c.reservations_per_second)
        .filter(|r| *r > 0.0)
        .fold(max, f64::min);
    let (lo, hi) = (
        min.log10().floor(),
        max.log10().ceil().max(min.log10().floor() + 1.0),
    );
    let x = |i: usize| left + (w - left - right) * i as f64 / (concurrency.len().max(2) - 1) as f64;
    let y = |r: f64| top + (h - top - bottom) * (1.0 - (r.max(1.0).log10() - lo) / (hi - lo));
    let colours = [
        "#1b7f3b", "#52b06a", "#1f5fa8", "#6f9fd8", "#b3261e", "#e07b39",
    ];
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"22\" font-size=\"14\">{title}</text>\n"
    );
    for decade in (lo as i32)..=(hi as i32) {
        let yy = y(10f64.powi(decade));
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            w - right,
            left - 6.0,
            yy + 4.0,
            if decade >= 3 {
                format!("{}k", 10u64.pow(decade as u32) / 1000)
            } else {
                10u64.pow(decade as u32).to_string()
            }
        );
    }
    for (i, n) in concurrency.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{n}</text>",
            x(i),
            h - bottom + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">concurrent buyers</text>\
         <text transform=\"rotate(-90)\" x=\"{:.1}\" y=\"16\" text-anchor=\"middle\">durable reservations/s (log)</text>",
        (left + w - right) / 2.0,
        h - 10.0,
        -(top + h - bottom) / 2.0
    );
    for (k, strategy) in Strategy::ALL.into_iter().enumerate() {
        let points: Vec<String> = concurrency
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                cells
                    .iter()
                    .find(|c| c.strategy == strategy && c.concurrency == *n)
                    .map(|c| format!("{:.1},{:.1}", x(i), y(c.reservations_per_second)))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let colour = colours[k % colours.len()];
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\" points=\"{}\"/>",
            points.join(" ")
        );
        for p in &points {
            let (px, py) = p.split_once(',').unwrap_or(("0", "0"));
            let _ = writeln!(
                svg,
                "<circle cx=\"{px}\" cy=\"{py}\" r=\"3\" fill=\"{colour}\"/>"
            );
        }
        let ly = top + 10.0 + 20.0 * k as f64;
        let _ = writeln!(
            svg,
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{colour}\" stroke-width=\"3\"/>\
             <text x=\"{}\" y=\"{}\">{strategy}</text>",
            w - right + 12.0,
            w - right + 32.0,
            w - right + 38.0,
            ly + 4.0
        );
    }
    svg.push_str("</svg>\n");
    svg
}
