//! LAN discovery over mDNS/DNS-SD with the `mdns-sd` crate: the node is
//! announced as an instance of [`SERVICE_TYPE`](crate::SERVICE_TYPE) (its
//! port in the SRV record, its id and network fingerprint in TXT) and the
//! same type is browsed. mdns-sd runs its own thread and sends multicast on
//! every interface, which is why this is opt-in and never used by the
//! simulator.

use std::net::IpAddr;
use std::time::Duration;

use mdns_sd::{ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

use crate::lan::{Announcement, Heard, LanDiscovery, LanError, LanSession};
use crate::SERVICE_TYPE;

/// TXT keys.
const TXT_ID: &str = "id";
const TXT_NET: &str = "net";
const TXT_VERSION: &str = "v";

/// How long shutdown waits for the goodbye (an unregister) to go out.
const GOODBYE_WAIT: Duration = Duration::from_millis(500);

/// LAN discovery over mDNS. `MdnsLan::default()` uses every interface the
/// daemon picks (loopback included).
#[derive(Debug, Clone, Default)]
pub struct MdnsLan {
    _private: (),
}

struct MdnsSession {
    daemon: ServiceDaemon,
    fullname: String,
}

impl LanDiscovery for MdnsLan {
    fn start(
        &self,
        me: Announcement,
        heard: mpsc::Sender<Heard>,
    ) -> Result<Box<dyn LanSession>, LanError> {
        let fail = |what: &str, e: mdns_sd::Error| LanError(format!("{what}: {e}"));
        let daemon = ServiceDaemon::new().map_err(|e| fail("cannot start mDNS", e))?;
        let mut txt = vec![(TXT_VERSION, "1".to_owned()), (TXT_ID, me.id.clone())];
        if let Some(net) = &me.network {
            txt.push((TXT_NET, net.clone()));
        }
        // The id is unique where names are not; the host name only has to be
        // unique on the link, and the id is.
        let host = format!("p2p-{}.local.", me.id);
        let info = ServiceInfo::new(SERVICE_TYPE, &me.id, &host, "", me.port, &txt[..])
            .map_err(|e| fail("bad announcement", e))?
            .enable_addr_auto();
        let fullname = info.get_fullname().to_owned();
        let events = daemon
            .browse(SERVICE_TYPE)
            .map_err(|e| fail("cannot browse", e))?;
        daemon
            .register(info)
            .map_err(|e| fail("cannot announce", e))?;
        tokio::spawn(async move {
            // Ends when the daemon shuts down (its sender goes away) or the
            // driver is gone.
            while let Ok(event) = events.recv_async().await {
                if let ServiceEvent::ServiceResolved(service) = event {
                    if let Some(h) = heard_of(&service) {
                        if heard.send(h).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Ok(Box::new(MdnsSession { daemon, fullname }))
    }
}

/// What a resolved instance says, `None` if it is not one of ours (no id,
/// another protocol version) or has no usable address.
fn heard_of(s: &ResolvedService) -> Option<Heard> {
    if s.txt_properties.get_property_val_str(TXT_VERSION) != Some("1") {
        return None;
    }
    let id = s.txt_properties.get_property_val_str(TXT_ID)?.to_owned();
    let network = s
        .txt_properties
        .get_property_val_str(TXT_NET)
        .map(str::to_owned);
    let mut ips: Vec<IpAddr> = s.get_addresses_v4().into_iter().map(IpAddr::V4).collect();
    // A set from the daemon: sorted so that dials go in a stable order.
    ips.sort();
    let addrs: Vec<String> = ips
        .into_iter()
        .map(|ip| std::net::SocketAddr::new(ip, s.port).to_string())
        .collect();
    (!addrs.is_empty()).then_some(Heard {
        addrs,
        id: Some(id),
        network,
    })
}

impl LanSession for MdnsSession {
    fn stop(self: Box<Self>) {
        // The goodbye (TTL 0) tells browsers to drop us now rather than
        // when their cache expires. Bounded: shutdown must not hang on it.
        if let Ok(status) = self.daemon.unregister(&self.fullname) {
            let _ = status.recv_timeout(GOODBYE_WAIT);
        }
        if let Ok(status) = self.daemon.shutdown() {
            let _ = status.recv_timeout(GOODBYE_WAIT);
        }
    }
}
