//! `--plot FILE.svg`, readable at 200 peers: the top panel draws the
//! spread of established connections across peers over simulated time
//! (a band from the minimum to the maximum, and the median as a line)
//! rather than one line per peer; the bottom panel draws the messages and
//! bytes the whole mesh writes per second. Fault windows are shaded in
//! both. Plain SVG text, no plotting crate.

use std::fmt::Write as _;

use crate::metrics::TRAFFIC_BUCKET_MS;
use crate::report::Report;
use crate::world::Series;

const W: f64 = 1000.0;
const H: f64 = 780.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 80.0;
/// Top panel: connections.
const TOP: f64 = 60.0;
const PH1: f64 = 380.0;
/// Bottom panel: traffic.
const TOP2: f64 = 490.0;
const PH2: f64 = 220.0;
/// At most this many points in the traffic panel.
const TRAFFIC_POINTS: usize = 250;

/// One step of the spread: from `ms` on (until the next step), the hosts
/// that have started hold between `min` and `max` established peers, with
/// `median` the lower median.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// Simulated ms.
    pub ms: u64,
    /// Fewest established peers of any started host.
    pub min: u32,
    /// Lower median (the `(n - 1) / 2`-th smallest of n hosts).
    pub median: u32,
    /// Most established peers of any host.
    pub max: u32,
}

/// The spread of established peers across hosts over time: one step per
/// simulated ms at which any host's count changed. A host counts from its
/// first point on (a crashed host keeps its last count, 0).
pub fn spread(series: &Series) -> Vec<Spread> {
    let mut events: Vec<(u64, usize, u32)> = series
        .hosts
        .iter()
        .enumerate()
        .flat_map(|(h, pts)| pts.iter().map(move |&(ms, n)| (ms, h, n)))
        .collect();
    // Stable by time, each host's points in their order.
    events.sort_by_key(|&(ms, _, _)| ms);
    let mut current: Vec<Option<u32>> = vec![None; series.hosts.len()];
    // hist[v]: hosts currently holding v peers.
    let mut hist: Vec<usize> = Vec::new();
    let mut counted = 0usize;
    let mut out: Vec<Spread> = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let ms = events[i].0;
        while i < events.len() && events[i].0 == ms {
            let (_, h, n) = events[i];
            match current[h].replace(n) {
                Some(old) => hist[old as usize] -= 1,
                None => counted += 1,
            }
            if hist.len() <= n as usize {
                hist.resize(n as usize + 1, 0);
            }
            hist[n as usize] += 1;
            i += 1;
        }
        let min = hist.iter().position(|&c| c > 0).unwrap_or(0) as u32;
        let max = hist.iter().rposition(|&c| c > 0).unwrap_or(0) as u32;
        let want = (counted - 1) / 2;
        let mut seen = 0;
        let mut median = 0;
        for (v, &c) in hist.iter().enumerate() {
            seen += c;
            if seen > want {
                median = v as u32;
                break;
            }
        }
        let step = Spread {
            ms,
            min,
            median,
            max,
        };
        match out.last() {
            Some(l) if (l.min, l.median, l.max) == (min, median, max) => {}
            _ => out.push(step),
        }
    }
    out
}

/// Messages and bytes per second until `end_ms` (quiet buckets at the end
/// count as 0), re-bucketed to at most [`TRAFFIC_POINTS`] points:
/// (start ms, messages/s, bytes/s).
fn traffic_rates(series: &Series, end_ms: u64) -> Vec<(u64, f64, f64)> {
    let t = &series.traffic;
    let len = t
        .messages
        .len()
        .max(end_ms.div_ceil(TRAFFIC_BUCKET_MS) as usize);
    let (mut messages, mut bytes) = (t.messages.clone(), t.bytes.clone());
    messages.resize(len, 0);
    bytes.resize(len, 0);
    let group = len.div_ceil(TRAFFIC_POINTS).max(1);
    let secs = (group as u64 * TRAFFIC_BUCKET_MS) as f64 / 1000.0;
    messages
        .chunks(group)
        .zip(bytes.chunks(group))
        .enumerate()
        .map(|(i, (m, b))| {
            let ms = (i * group) as u64 * TRAFFIC_BUCKET_MS;
            (
                ms,
                m.iter().sum::<u64>() as f64 / secs,
                b.iter().sum::<u64>() as f64 / secs,
            )
        })
        .collect()
}

/// The SVG of a report run with `plot` enabled; `None` without plot data.
pub fn svg(report: &Report) -> Option<String> {
    let data = report.plot.as_ref()?;
    let t_max = report.sim_duration_ms.max(1) as f64;
    let steps = spread(&data.series);
    let y_max = steps
        .iter()
        .map(|s| s.max)
        .max()
        .unwrap_or(0)
        .max(report.peers.saturating_sub(1) as u32)
        .max(1) as f64;
    let pw = W - LEFT - RIGHT;
    let x = |ms: u64| LEFT + pw * (ms as f64 / t_max).min(1.0);
    let y = |n: u32| TOP + PH1 * (1.0 - f64::from(n) / y_max);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15">p2p-sim {}: {} peers, seed {} — established connections across peers</text>"#,
        report.scenario, report.peers, report.seed
    );
    let verdict = match report.converged_at_ms {
        Some(at) => format!("full mesh at {at} ms"),
        None => "no full mesh at the end".to_owned(),
    };
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="40" fill="#555">{verdict}; {} violation(s); band: min–max, line: median; shaded: faults (red partition/cuts, orange stalls, grey host down)</text>"##,
        report.violations.len()
    );

    // Fault windows under everything, in both panels.
    for (top, ph) in [(TOP, PH1), (TOP2, PH2)] {
        for win in &data.windows {
            let x0 = x(win.start_ms);
            let x1 = x(win.end_ms.unwrap_or(report.sim_duration_ms)).max(x0 + 1.0);
            let (fill, opacity, y0, hh) = match win.kind {
                "down" => {
                    // One thin band per crashed host, at the top.
                    let band = win.host.unwrap_or(0) as f64 % 20.0;
                    ("#777777", 0.35, top + band * 3.0, 3.0)
                }
                "hold" | "stalls" => ("#f0a030", 0.15, top, ph),
                _ => ("#e04040", 0.12, top, ph),
            };
            let _ = writeln!(
                s,
                r#"<rect class="fault" x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{hh:.1}" fill="{fill}" fill-opacity="{opacity}"/>"#,
                x1 - x0
            );
        }
    }

    // Axes, grid and time labels.
    for (top, ph) in [(TOP, PH1), (TOP2, PH2)] {
        let _ = writeln!(
            s,
            r##"<g stroke="#888" stroke-width="1"><line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}"/><line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{0}"/></g>"##,
            top + ph,
            LEFT + pw,
        );
    }
    for i in 0..=5 {
        let ms = (t_max * f64::from(i) / 5.0) as u64;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">{ms} ms</text>"##,
            x(ms),
            TOP2 + PH2 + 18.0
        );
        let n = (y_max * f64::from(i) / 5.0).round() as u32;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#444">{n}</text><line x1="{LEFT}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#eee"/>"##,
            LEFT - 6.0,
            y(n) + 4.0,
            y(n),
            LEFT + pw,
            y(n)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#444">simulated time</text>"##,
        LEFT + pw / 2.0,
        H - 20.0
    );

    // The spread: a band from min to max, the median on top.
    if let Some(last) = steps.last() {
        let end = x(report.sim_duration_ms.max(last.ms));
        let mut upper = String::new();
        let mut lower = Vec::new();
        for (i, st) in steps.iter().enumerate() {
            let x0 = x(st.ms);
            let x1 = steps.get(i + 1).map_or(end, |n| x(n.ms));
            let _ = write!(
                upper,
                "{}{x0:.1},{:.1} L{x1:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                y(st.max),
                y(st.max)
            );
            lower.push(format!(
                "L{x1:.1},{:.1} L{x0:.1},{:.1}",
                y(st.min),
                y(st.min)
            ));
        }
        lower.reverse();
        let _ = writeln!(
            s,
            r##"<path class="spread" d="{upper} {} Z" fill="#3070c0" fill-opacity="0.25" stroke="#3070c0" stroke-opacity="0.5" stroke-width="0.8"><title>min–max established peers</title></path>"##,
            lower.join(" ")
        );
        let mut d = String::new();
        for (i, st) in steps.iter().enumerate() {
            let x0 = x(st.ms);
            let x1 = steps.get(i + 1).map_or(end, |n| x(n.ms));
            let _ = write!(
                d,
                "{}{x0:.1},{:.1} L{x1:.1},{:.1}",
                if i == 0 { "M" } else { " L" },
                y(st.median),
                y(st.median)
            );
        }
        let _ = writeln!(
            s,
            r##"<path class="median" d="{d}" fill="none" stroke="#103070" stroke-width="1.6"><title>median established peers</title></path>"##
        );
    }
    if let Some(at) = report.converged_at_ms {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#2a2" stroke-dasharray="4 3"/>"##,
            x(at),
            TOP + PH1
        );
    }

    // Traffic: messages/s (left axis) and bytes/s (right axis).
    let rates = traffic_rates(&data.series, report.sim_duration_ms);
    let m_max = rates.iter().map(|r| r.1).fold(0.0, f64::max).max(1.0);
    let b_max = rates.iter().map(|r| r.2).fold(0.0, f64::max).max(1.0);
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{}" font-size="13">writes per second (blue, left) and bytes per second (orange, right), whole mesh</text>"##,
        TOP2 - 10.0
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let yy = TOP2 + PH2 * (1.0 - f);
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#1f5fa8">{}</text><text x="{:.1}" y="{:.1}" fill="#c06010">{}</text><line x1="{LEFT}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#eee"/>"##,
            LEFT - 6.0,
            yy + 4.0,
            si(m_max * f),
            LEFT + pw + 6.0,
            yy + 4.0,
            si(b_max * f),
            LEFT + pw,
        );
    }
    for (class, color, max, pick) in [
        ("messages", "#1f5fa8", m_max, 1usize),
        ("bytes", "#c06010", b_max, 2usize),
    ] {
        let mut d = String::new();
        for (i, r) in rates.iter().enumerate() {
            let v = if pick == 1 { r.1 } else { r.2 };
            let yy = TOP2 + PH2 * (1.0 - v / max);
            let _ = write!(
                d,
                "{}{:.1},{yy:.1}",
                if i == 0 { "M" } else { " L" },
                x(r.0)
            );
        }
        if !d.is_empty() {
            let _ = writeln!(
                s,
                r#"<path class="{class}" d="{d}" fill="none" stroke="{color}" stroke-width="1.2"/>"#
            );
        }
    }
    s.push_str("</svg>\n");
    Some(s)
}

/// 1234567 -> "1.2M": short axis labels.
fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.1}G", v / 1e9),
        v if v >= 1e6 => format!("{:.1}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Traffic;

    fn series(hosts: Vec<Vec<(u64, u32)>>) -> Series {
        Series {
            hosts,
            traffic: Traffic::default(),
        }
    }

    fn st(ms: u64, min: u32, median: u32, max: u32) -> Spread {
        Spread {
            ms,
            min,
            median,
            max,
        }
    }

    #[test]
    fn spread_follows_min_median_max_of_started_hosts() {
        let s = series(vec![
            vec![(0, 0), (10, 1), (20, 2)],
            vec![(5, 0), (10, 2)],
            vec![(15, 0), (30, 2), (40, 0)],
        ]);
        assert_eq!(
            spread(&s),
            vec![
                // Only host 0 has started.
                st(0, 0, 0, 0),
                // Host 1 starts at 0 too: no change, no step at 5.
                st(10, 1, 1, 2),
                // Host 2 joins with 0: lower median of {0, 1, 2} is 1.
                st(15, 0, 1, 2),
                st(20, 0, 2, 2),
                st(30, 2, 2, 2),
                st(40, 0, 2, 2),
            ]
        );
        // Even count: the lower median.
        let s = series(vec![vec![(0, 1)], vec![(0, 3)]]);
        assert_eq!(spread(&s), vec![st(0, 1, 1, 3)]);
        assert_eq!(spread(&series(vec![vec![], vec![]])), vec![]);
    }

    #[test]
    fn traffic_rates_are_per_second() {
        let mut s = series(vec![]);
        let b = TRAFFIC_BUCKET_MS;
        let per_s = 1000.0 / b as f64;
        // 3 buckets: 1, 2, 3 writes; a fourth, quiet one up to the end.
        s.traffic.messages = vec![1, 2, 3];
        s.traffic.bytes = vec![100, 0, 50];
        let r = traffic_rates(&s, 4 * b);
        assert_eq!(
            r,
            vec![
                (0, per_s, 100.0 * per_s),
                (b, 2.0 * per_s, 0.0),
                (2 * b, 3.0 * per_s, 50.0 * per_s),
                (3 * b, 0.0, 0.0)
            ]
        );
        // Many buckets are grouped into at most TRAFFIC_POINTS points.
        s.traffic.messages = vec![1; 1000];
        s.traffic.bytes = vec![1; 1000];
        let r = traffic_rates(&s, 0);
        assert_eq!(r.len(), 250);
        assert_eq!(r[1], (4 * b, per_s, per_s));
    }
}
