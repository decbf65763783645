//! `--plot FILE.svg`: established connections of every peer over simulated
//! time, one step line per peer, with the fault windows shaded. Plain SVG
//! text, no plotting crate.

use std::fmt::Write as _;

use crate::report::Report;

const W: f64 = 1000.0;
const H: f64 = 520.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;

/// The SVG of a report run with `plot` enabled; `None` without plot data.
pub fn svg(report: &Report) -> Option<String> {
    let data = report.plot.as_ref()?;
    let t_max = report.sim_duration_ms.max(1) as f64;
    let y_max = data
        .series
        .hosts
        .iter()
        .flat_map(|p| p.iter().map(|&(_, n)| n))
        .max()
        .unwrap_or(0)
        .max(report.peers.saturating_sub(1) as u32)
        .max(1) as f64;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |ms: u64| LEFT + pw * (ms as f64 / t_max).min(1.0);
    let y = |n: u32| TOP + ph * (1.0 - f64::from(n) / y_max);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="22" font-size="15">p2p-sim {}: {} peers, seed {} — established connections per peer</text>"#,
        report.scenario, report.peers, report.seed
    );
    let verdict = match report.converged_at_ms {
        Some(at) => format!("full mesh at {at} ms"),
        None => "no full mesh at the end".to_owned(),
    };
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="40" fill="#555">{verdict}; {} violation(s); shaded: faults (red partition/cuts, orange stalls, grey host down)</text>"##,
        report.violations.len()
    );

    // Fault windows under the lines.
    for win in &data.windows {
        let x0 = x(win.start_ms);
        let x1 = x(win.end_ms.unwrap_or(report.sim_duration_ms)).max(x0 + 1.0);
        let (fill, opacity, y0, hh) = match win.kind {
            "down" => {
                // One thin band per crashed host, at the top.
                let band = win.host.unwrap_or(0) as f64 % 20.0;
                ("#777777", 0.35, TOP + band * 3.0, 3.0)
            }
            "hold" | "stalls" => ("#f0a030", 0.15, TOP, ph),
            _ => ("#e04040", 0.12, TOP, ph),
        };
        let _ = writeln!(
            s,
            r#"<rect x="{x0:.1}" y="{y0:.1}" width="{:.1}" height="{hh:.1}" fill="{fill}" fill-opacity="{opacity}"/>"#,
            x1 - x0
        );
    }

    // Axes and grid.
    let _ = writeln!(
        s,
        r##"<g stroke="#888" stroke-width="1"><line x1="{LEFT}" y1="{}" x2="{}" y2="{}"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}"/></g>"##,
        TOP + ph,
        LEFT + pw,
        TOP + ph,
        TOP + ph
    );
    for i in 0..=5 {
        let ms = (t_max * f64::from(i) / 5.0) as u64;
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">{ms} ms</text>"##,
            x(ms),
            TOP + ph + 18.0
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
        H - 10.0
    );

    // One step line per peer.
    let n_hosts = data.series.hosts.len().max(1);
    for (h, points) in data.series.hosts.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let hue = (h * 360 / n_hosts) as u32;
        let mut d = String::new();
        let mut last_y = None;
        for &(ms, n) in points {
            let (px, py) = (x(ms), y(n));
            match last_y {
                None => {
                    let _ = write!(d, "M{px:.1},{py:.1}");
                }
                Some(ly) => {
                    let _ = write!(d, " L{px:.1},{ly:.1} L{px:.1},{py:.1}");
                }
            }
            last_y = Some(py);
        }
        if let Some(ly) = last_y {
            let _ = write!(d, " L{:.1},{ly:.1}", x(report.sim_duration_ms));
        }
        let _ = writeln!(
            s,
            r#"<path d="{d}" fill="none" stroke="hsl({hue},70%,40%)" stroke-width="1" stroke-opacity="0.6"><title>n{h}</title></path>"#
        );
    }

    if let Some(at) = report.converged_at_ms {
        let _ = writeln!(
            s,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1:.1}" stroke="#2a2" stroke-dasharray="4 3"/>"##,
            x(at),
            TOP + ph
        );
    }
    s.push_str("</svg>\n");
    Some(s)
}
