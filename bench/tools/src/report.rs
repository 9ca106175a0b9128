//! Turns the raw samples of a run into the markdown table and the JSON of ratios.
//!
//! `bench/run` appends one `METRIC<TAB>SIDE<TAB>PAIR<TAB>VALUE` line per measurement
//! (SIDE is `gateway`, `nginx`, `direct`, or a peer such as `haproxy` or `caddy`), and
//! `METRIC<TAB>note<TAB>-<TAB>TEXT` lines for gateway rows that could not run. Ratios are
//! taken per pair (PAIR numbers a round: each side's run against the nginx run of the same
//! round), then summarised by their median, min and max. Every side that is not the gateway,
//! nginx or `direct` is a peer: it gets a column of its own and a ratio column against nginx,
//! in the order it first appears in the samples (the order the run measured them).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::Res;

/// How a row compares with its target.
#[derive(Clone, Copy)]
enum Target {
    /// The ratio gateway ÷ nginx must be at least this.
    RatioAtLeast(f64),
    /// The ratio gateway ÷ nginx must be at most this.
    RatioAtMost(f64),
    /// The gateway's own value must be at most this.
    GatewayAtMost(f64),
    /// Shown for context only.
    None,
}

struct Row {
    /// The metric in the samples file.
    metric: &'static str,
    label: &'static str,
    /// Subtract the `direct` sample of the same pair before comparing.
    minus_direct: bool,
    target: Target,
}

const ROWS: &[Row] = &[
    Row {
        metric: "rps",
        label: "throughput at saturation (req/s, wrk)",
        minus_direct: false,
        target: Target::RatioAtLeast(1.0),
    },
    Row {
        metric: "cpu_us_per_req",
        label: "CPU µs per request (proxy process)",
        minus_direct: false,
        target: Target::RatioAtMost(1.0),
    },
    Row {
        metric: "p50_50",
        label: "p50 latency at 50% of nginx max (µs)",
        minus_direct: false,
        target: Target::None,
    },
    Row {
        metric: "p99_25",
        label: "p99 latency at 25% of nginx max (µs)",
        minus_direct: false,
        target: Target::None,
    },
    Row {
        metric: "p99_50",
        label: "p99 latency at 50% of nginx max (µs)",
        minus_direct: false,
        target: Target::RatioAtMost(1.5),
    },
    Row {
        metric: "p99_75",
        label: "p99 latency at 75% of nginx max (µs)",
        minus_direct: false,
        target: Target::None,
    },
    Row {
        metric: "p999_25",
        label: "p99.9 latency at 25% of nginx max (µs)",
        minus_direct: false,
        target: Target::None,
    },
    Row {
        metric: "p999_50",
        label: "p99.9 latency at 50% of nginx max (µs)",
        minus_direct: false,
        target: Target::None,
    },
    Row {
        metric: "p999_75",
        label: "p99.9 latency at 75% of nginx max (µs)",
        minus_direct: false,
        target: Target::None,
    },
    Row {
        metric: "p99_50",
        label: "added p99 over direct at 50% (µs)",
        minus_direct: true,
        target: Target::None,
    },
    Row {
        metric: "hs_full_rate",
        label: "full TLS 1.3 handshakes/s (client-bound)",
        minus_direct: false,
        target: Target::RatioAtLeast(1.5),
    },
    Row {
        metric: "hs_full_cpu",
        label: "server CPU µs per full handshake",
        minus_direct: false,
        target: Target::RatioAtMost(1.0 / 1.5),
    },
    Row {
        metric: "hs_resumed_rate",
        label: "resumed TLS 1.3 handshakes/s",
        minus_direct: false,
        target: Target::None,
    },
    Row {
        metric: "hs_resumed_cpu",
        label: "server CPU µs per resumed handshake",
        minus_direct: false,
        target: Target::None,
    },
    Row {
        metric: "rss_plain_1k",
        label: "RSS per idle keep-alive conn, plain, 1k (KiB)",
        minus_direct: false,
        target: Target::GatewayAtMost(4.0),
    },
    Row {
        metric: "rss_plain_10k",
        label: "RSS per idle keep-alive conn, plain, 10k (KiB)",
        minus_direct: false,
        target: Target::GatewayAtMost(4.0),
    },
    Row {
        metric: "rss_tls_1k",
        label: "RSS per idle keep-alive conn, TLS, 1k (KiB)",
        minus_direct: false,
        target: Target::GatewayAtMost(16.0),
    },
    Row {
        metric: "rss_tls_10k",
        label: "RSS per idle keep-alive conn, TLS, 10k (KiB)",
        minus_direct: false,
        target: Target::GatewayAtMost(16.0),
    },
];

#[derive(Default)]
struct Samples {
    /// (metric, side) -> pair -> value
    values: BTreeMap<(String, String), BTreeMap<String, f64>>,
    notes: BTreeMap<String, String>,
    /// The peers, in the order of their first sample.
    peers: Vec<String>,
}

/// The sides that are not peers.
const OWN_SIDES: &[&str] = &["gateway", "nginx", "direct"];

fn load(path: &Path) -> Res<Samples> {
    let mut s = Samples::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let f: Vec<&str> = line.splitn(4, '\t').collect();
        let [metric, side, pair, value] = f[..] else {
            continue;
        };
        if side == "note" {
            s.notes.insert(metric.to_owned(), value.to_owned());
        } else if let Ok(v) = value.parse::<f64>() {
            if !OWN_SIDES.contains(&side) && !s.peers.iter().any(|p| p == side) {
                s.peers.push(side.to_owned());
            }
            s.values
                .entry((metric.to_owned(), side.to_owned()))
                .or_default()
                .insert(pair.to_owned(), v);
        }
    }
    Ok(s)
}

/// Median, min and max; the median of an even count is the mean of the middle two.
fn summary(mut v: Vec<f64>) -> Option<(f64, f64, f64)> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((med, v[0], v[n - 1]))
}

fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fmt_sum(s: Option<(f64, f64, f64)>) -> String {
    match s {
        Some((m, lo, hi)) => format!("{} [{}–{}]", fmt_num(m), fmt_num(lo), fmt_num(hi)),
        None => "n/a".to_owned(),
    }
}

fn sum_json(s: Option<(f64, f64, f64)>) -> Value {
    match s {
        Some((m, lo, hi)) => json!({"median": m, "min": lo, "max": hi}),
        None => Value::Null,
    }
}

/// Writes `results.md` and `results.json` into `out_dir` and prints the markdown.
pub(crate) fn run(samples: &Path, meta: &Path, out_dir: &Path) -> Res<()> {
    let s = load(samples)?;
    let meta_text = std::fs::read_to_string(meta).unwrap_or_default();
    let meta: Vec<(String, String)> = meta_text
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let empty = BTreeMap::new();
    let mut md = String::new();
    let peers = &s.peers;
    // Without peers the table keeps the shape it had before them.
    let peer_cols: String = peers.iter().map(|p| format!(" {p} |")).collect();
    let peer_ratio_cols: String = peers.iter().map(|p| format!(" {p} ÷ nginx |")).collect();
    writeln!(
        md,
        "| figure | gateway | nginx |{peer_cols} gateway ÷ nginx |{peer_ratio_cols} target | met |"
    )?;
    writeln!(
        md,
        "|---|---|---|{}---|---|---|",
        "---|".repeat(2 * peers.len())
    )?;
    let mut rows_json = Vec::new();
    for row in ROWS {
        let get = |side: &str| {
            s.values
                .get(&(row.metric.to_owned(), side.to_owned()))
                .unwrap_or(&empty)
        };
        let direct = get("direct");
        // Per pair, the value the row compares: minus the same pair's direct run if asked.
        let adjusted = |side: &str| -> BTreeMap<String, f64> {
            get(side)
                .iter()
                .filter_map(|(p, &v)| {
                    let v = if row.minus_direct {
                        v - direct.get(p)?
                    } else {
                        v
                    };
                    Some((p.clone(), v))
                })
                .collect()
        };
        let ng_adj = adjusted("nginx");
        let ratios_to_nginx = |adj: &BTreeMap<String, f64>| -> Vec<f64> {
            adj.iter()
                .filter_map(|(p, &x)| ng_adj.get(p).filter(|&&n| n > 0.0).map(|&n| x / n))
                .collect()
        };
        let pairs_with_nginx =
            |adj: &BTreeMap<String, f64>| adj.keys().filter(|p| ng_adj.contains_key(*p)).count();
        let gw_adj = adjusted("gateway");
        let (gs, ns, rs) = (
            summary(gw_adj.values().copied().collect()),
            summary(ng_adj.values().copied().collect()),
            summary(ratios_to_nginx(&gw_adj)),
        );
        let (target, met) = match row.target {
            Target::RatioAtLeast(t) => (format!("≥ {t:.2}×"), rs.map(|r| r.0 >= t)),
            Target::RatioAtMost(t) => (format!("≤ {t:.2}×"), rs.map(|r| r.0 <= t)),
            Target::GatewayAtMost(t) => (format!("gateway ≤ {t:.0} KiB"), gs.map(|g| g.0 <= t)),
            Target::None => ("–".to_owned(), None),
        };
        let note = s.notes.get(row.metric);
        let (gtxt, ntxt, rtxt) = match (gs, note) {
            (None, Some(n)) => (n.clone(), fmt_sum(ns), "n/a".to_owned()),
            _ => (fmt_sum(gs), fmt_sum(ns), fmt_sum(rs)),
        };
        let met_txt = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let mut peer_txt = String::new();
        let mut peer_ratio_txt = String::new();
        let mut peers_json = serde_json::Map::new();
        for peer in peers {
            let adj = adjusted(peer);
            let (vs, prs) = (
                summary(adj.values().copied().collect()),
                summary(ratios_to_nginx(&adj)),
            );
            write!(peer_txt, " {} |", fmt_sum(vs))?;
            write!(peer_ratio_txt, " {} |", fmt_sum(prs))?;
            peers_json.insert(
                peer.clone(),
                json!({
                    "value": sum_json(vs),
                    "ratio": sum_json(prs),
                    "pairs": pairs_with_nginx(&adj),
                }),
            );
        }
        writeln!(
            md,
            "| {} | {gtxt} | {ntxt} |{peer_txt} {rtxt} |{peer_ratio_txt} {target} | {met_txt} |",
            row.label
        )?;
        rows_json.push(json!({
            "metric": row.metric,
            "figure": row.label,
            "minus_direct": row.minus_direct,
            "gateway": sum_json(gs),
            "nginx": sum_json(ns),
            "ratio": sum_json(rs),
            "target": target,
            "met": met,
            "note": note,
            "pairs": gw_adj.len().min(ng_adj.len()),
            "peers": peers_json,
        }));
    }
    if !meta.is_empty() {
        writeln!(md)?;
        for (k, v) in &meta {
            writeln!(md, "- {k}: {v}")?;
        }
    }
    print!("{md}");
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(out_dir.join("results.md"), &md)?;
    let meta_json: serde_json::Map<String, Value> = meta
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let doc = json!({ "meta": meta_json, "peers": peers, "rows": rows_json });
    std::fs::write(
        out_dir.join("results.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    Ok(())
}

/// Prints the value at `key` of the JSON object on stdin (`a.b` for nesting).
pub(crate) fn field(key: &str) -> Res<()> {
    let v: Value = serde_json::from_reader(std::io::stdin().lock())?;
    let mut cur = &v;
    for part in key.split('.') {
        // A number indexes an array: `checkpoints.0.open`.
        let next = match (cur, part.parse::<usize>()) {
            (Value::Array(a), Ok(i)) => a.get(i),
            _ => cur.get(part),
        };
        cur = next.ok_or_else(|| format!("no `{key}` in the JSON"))?;
    }
    match cur {
        Value::String(s) => println!("{s}"),
        other => println!("{other}"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        assert_eq!(summary(vec![3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(summary(vec![4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(summary(vec![f64::NAN]), None);
    }

    #[test]
    fn ratios_are_per_pair_and_direct_is_subtracted() {
        let dir = std::env::temp_dir().join(format!("bench-tools-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let samples = dir.join("samples.tsv");
        std::fs::write(
            &samples,
            "rps\tgateway\t1\t200\nrps\tnginx\t1\t100\nrps\tgateway\t2\t90\nrps\tnginx\t2\t100\n\
             p99_50\tdirect\t1\t100\np99_50\tgateway\t1\t150\np99_50\tnginx\t1\t200\n\
             hs_full_rate\tnote\t-\tn/a (gateway TLS not available)\n",
        )
        .unwrap();
        run(&samples, &dir.join("none"), &dir).unwrap();
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        let rows = doc["rows"].as_array().unwrap();
        assert_eq!(rows[0]["ratio"]["median"], 1.45);
        assert_eq!(rows[0]["ratio"]["min"], 0.9);
        let added = rows.iter().find(|r| r["minus_direct"] == true).unwrap();
        assert_eq!(added["ratio"]["median"], 0.5);
        let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
        assert!(md.contains("n/a (gateway TLS not available)"));
        // No peer samples: the table keeps its old columns, and the JSON lists no peers.
        assert!(md.starts_with("| figure | gateway | nginx | gateway ÷ nginx | target | met |\n"));
        assert_eq!(doc["peers"], json!([]));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn peers_get_columns_and_ratios_against_nginx_of_the_same_pair() {
        let dir = std::env::temp_dir().join(format!("bench-tools-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let samples = dir.join("samples.tsv");
        std::fs::write(
            &samples,
            "rps\tgateway\t1\t200\nrps\tnginx\t1\t100\nrps\thaproxy\t1\t150\nrps\tcaddy\t1\t50\n\
             rps\tgateway\t2\t90\nrps\tnginx\t2\t200\nrps\thaproxy\t2\t100\nrps\tcaddy\t2\t40\n\
             p99_50\tdirect\t1\t100\np99_50\tnginx\t1\t200\np99_50\thaproxy\t1\t150\n",
        )
        .unwrap();
        run(&samples, &dir.join("none"), &dir).unwrap();
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap())
                .unwrap();
        // In the order the run measured them, not alphabetical.
        assert_eq!(doc["peers"], json!(["haproxy", "caddy"]));
        let rows = doc["rows"].as_array().unwrap();
        // The existing fields are still there.
        assert_eq!(rows[0]["ratio"]["median"], 1.225);
        // haproxy: 150/100 and 100/200, per pair (not the ratio of the medians).
        assert_eq!(rows[0]["peers"]["haproxy"]["ratio"]["min"], 0.5);
        assert_eq!(rows[0]["peers"]["haproxy"]["ratio"]["max"], 1.5);
        assert_eq!(rows[0]["peers"]["caddy"]["value"]["median"], 45.0);
        assert_eq!(rows[0]["peers"]["caddy"]["pairs"], 2);
        let added = rows.iter().find(|r| r["minus_direct"] == true).unwrap();
        assert_eq!(added["peers"]["haproxy"]["value"]["median"], 50.0);
        assert_eq!(added["peers"]["haproxy"]["ratio"]["median"], 0.5);
        assert_eq!(added["peers"]["caddy"]["value"], Value::Null);
        let md = std::fs::read_to_string(dir.join("results.md")).unwrap();
        assert!(md.starts_with(
            "| figure | gateway | nginx | haproxy | caddy | gateway ÷ nginx | haproxy ÷ nginx | \
             caddy ÷ nginx | target | met |\n|---|---|---|---|---|---|---|---|---|---|\n"
        ));
        assert!(md.contains("| throughput at saturation (req/s, wrk) | 145 [90.0–200] | 150 [100–200] | 125 [100–150] | 45.0 [40.0–50.0] | 1.23 [0.45–2.00] | 1.00 [0.50–1.50] | 0.35 [0.20–0.50] |"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
