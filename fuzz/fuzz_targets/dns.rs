//! The DNS responder's query handler: any bytes arriving on a network's
//! address (UDP or TCP) give an answer, a forward or nothing, never a
//! panic; an answer carries the query's id and is at most 512 bytes over
//! UDP without EDNS.
#![no_main]

use berth_dns::config::{NetworkFile, Record};
use berth_dns::server::{handle_with, Action, Zones};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use std::sync::OnceLock;

fn zones() -> &'static Zones {
    static Z: OnceLock<Zones> = OnceLock::new();
    Z.get_or_init(|| {
        let f = NetworkFile {
            sources: Vec::new(),
            internal: false,
            network: "fuzz".into(),
            listen: vec!["10.89.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            upstreams: vec!["192.0.2.53:53".parse().unwrap()],
            records: vec![
                Record {
                    id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef".into(),
                    names: vec!["web".into(), "Alias.Name".into()],
                    ipv4: vec!["10.89.0.2".parse().unwrap()],
                    ipv6: vec!["fd00::2".parse().unwrap()],
                    dns_servers: vec![],
                },
                Record {
                    id: "0123456789abffff0123456789abcdef0123456789abcdef0123456789abcdef".into(),
                    names: vec!["many".into()],
                    ipv4: (0..=255u8).map(|i| [10, 89, 1, i].into()).collect(),
                    ipv6: vec![],
                    dns_servers: vec!["198.51.100.1:53".parse().unwrap()],
                },
            ],
        };
        // The first container is on a second network too (its names are
        // looked up there when the first has none).
        let back = NetworkFile {
            network: "back".into(),
            listen: vec!["10.90.0.1".parse().unwrap()],
            records: vec![Record {
                id: f.records[0].id.clone(),
                names: vec!["web".into(), "back-only".into()],
                ipv4: vec!["10.90.0.2".parse().unwrap()],
                ipv6: vec![],
                dns_servers: vec![],
            }],
            ..f.clone()
        };
        Zones::new(&[f, back]).0
    })
}

fuzz_target!(|data: &[u8]| {
    let local: IpAddr = "10.89.0.1".parse().unwrap();
    let src: IpAddr = "10.89.0.2".parse().unwrap();
    for tcp in [false, true] {
        let zs = zones();
        let zone = zs.zone_at(local);
        let sib = zone.map_or_else(Vec::new, |z| zs.siblings(z, src));
        match handle_with(zone, &sib, src, data, tcp) {
            Action::Reply(r) => {
                assert!(r.len() >= 12);
                assert_eq!(r[..2], data[..2], "the answer carries the query's id");
                assert!(r[2] & 0x80 != 0, "an answer is a response");
                assert!(tcp || r.len() <= 1232, "UDP answers fit");
            }
            Action::Forward(ups) => assert!(!ups.is_empty()),
            Action::Drop => {}
        }
    }
});
