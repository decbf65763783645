//! The vendored turmoil (`vendor/turmoil`, patched for speed; see
//! `vendor/README.md`) must deliver exactly what the published 0.7.2 does:
//! the same segments, to the same sockets, at the same simulated times, in
//! the same order. This workload exercises what the patch touches: many
//! links at once, random latency, held links released, links cut and
//! repaired, a host crashed and restarted, and idle links that wake up
//! again. Every delivery is logged and the log is hashed; the expected hash
//! was recorded with the unmodified crate (commit "vendor: turmoil 0.7.2 as
//! published"), so a change to delivery order fails this test.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use turmoil::net::{TcpListener, TcpStream};

const HOSTS: usize = 12;
const PORT: u16 = 7000;

/// Recorded with unpatched turmoil 0.7.2 (`TURMOIL_DELIVERY_PRINT=1` prints it).
const EXPECTED: &str = "85a24ad0cadf56aa69fc003f65a5d28a4b0ee36c50314f65a9996118c54663b7";

type Log = Arc<Mutex<Vec<String>>>;

fn name(i: usize) -> String {
    format!("h{i}")
}

async fn serve(me: usize, log: Log) -> turmoil::Result {
    let listener = TcpListener::bind((IpAddr::V4(Ipv4Addr::UNSPECIFIED), PORT)).await?;
    // Dial a few hosts above us; each connection sends numbered messages
    // with pauses, so links go idle and wake up again.
    for k in 1..=3 {
        let to = (me + k * 5) % HOSTS;
        if to == me {
            continue;
        }
        let log = log.clone();
        tokio::spawn(async move {
            let Ok(mut s) = TcpStream::connect((name(to), PORT)).await else {
                log.lock()
                    .unwrap()
                    .push(format!("{me} connect {to} failed"));
                return;
            };
            for n in 0..40u32 {
                let msg = format!("{me}>{to}#{n};");
                if s.write_all(msg.as_bytes()).await.is_err() {
                    log.lock()
                        .unwrap()
                        .push(format!("{me} write {to} failed at {n}"));
                    return;
                }
                tokio::time::sleep(Duration::from_millis(u64::from(n % 7) * 13 + 1)).await;
            }
        });
    }
    loop {
        let (mut s, from) = listener.accept().await?;
        let log = log.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => {
                        log.lock().unwrap().push(format!("{me} eof {from}"));
                        return;
                    }
                    Ok(n) => {
                        let now = turmoil::elapsed();
                        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                        log.lock()
                            .unwrap()
                            .push(format!("{now:?} {me} <- {from} {text}"));
                    }
                    Err(e) => {
                        log.lock().unwrap().push(format!("{me} err {from} {e}"));
                        return;
                    }
                }
            }
        });
    }
}

#[test]
fn patched_turmoil_delivers_like_the_published_crate() {
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let mut sim = turmoil::Builder::new()
        .rng_seed(42)
        .simulation_duration(Duration::from_secs(60))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(25))
        .build();
    for i in 0..HOSTS {
        let log = log.clone();
        sim.host(name(i), move || serve(i, log.clone()));
    }
    for step in 0..3000u32 {
        let (a, b) = (name(1), name(6));
        match step {
            200 => sim.hold(a, b),
            450 => sim.release(a, b),
            300 => sim.partition(name(2), name(7)),
            700 => sim.repair(name(2), name(7)),
            500 => sim.crash(name(9)),
            900 => sim.bounce(name(9)),
            _ => {}
        }
        let elapsed = sim.elapsed();
        log.lock().unwrap().push(format!("step {step} {elapsed:?}"));
        sim.step().expect("the workload's hosts never fail");
    }
    let log = log.lock().unwrap();
    let deliveries = log.iter().filter(|l| l.contains(" <- ")).count();
    assert!(
        deliveries > 1000,
        "the workload delivered only {deliveries} reads"
    );
    let mut h = Sha256::new();
    for line in log.iter() {
        h.update(line.as_bytes());
        h.update(b"\n");
    }
    let got = hex(&h.finalize());
    if std::env::var_os("TURMOIL_DELIVERY_PRINT").is_some() {
        eprintln!(
            "delivery log hash {got}, {} lines, {deliveries} reads",
            log.len()
        );
    }
    assert_eq!(got, EXPECTED, "turmoil's delivery order changed");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
