//! The real responder binary, in a network namespace each test makes (so
//! the host's interfaces are never touched), on 127.0.0.x addresses, with
//! fake upstream resolvers on other 127.0.0.y addresses. Needs root.

use berth_dns::config::{NetworkFile, Record as R};
use berth_dns::control;
use berth_dns::server;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_berth-dns");
const LISTEN: &str = "127.0.0.2";
const UPSTREAM: &str = "127.0.0.3";
const OWN_DNS: &str = "198.51.100.4";
/// What the fake upstream answers, over UDP and over TCP.
const UP_UDP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);
const UP_TCP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 98);
const OWN_UDP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 77);
const ID: &str = "f00dcafe12345678f00dcafe12345678f00dcafe12345678f00dcafe12345678";

fn require_root() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "these tests need root (they make a network namespace)"
    );
}

/// Runs `f` on a thread in a new network namespace with `lo` up; processes
/// and threads started from it are in the namespace too.
fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    require_root();
    std::thread::spawn(move || {
        // SAFETY: unshare of this thread's network namespace only.
        let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(
            r,
            0,
            "unshare(CLONE_NEWNET): {}",
            std::io::Error::last_os_error()
        );
        lo_up();
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn lo_up() {
    // SAFETY: an ioctl pair on a socket we own with a zeroed, named ifreq.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(s >= 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *c as libc::c_char;
        }
        assert_eq!(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr), 0);
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr), 0, "set lo up");
        libc::close(s);
    }
    // A container's own --dns server is never a loopback address (the
    // responder drops those: on the host they are the host's): one of
    // the documentation addresses, on this namespace's lo.
    let st = std::process::Command::new("ip")
        .args(["addr", "add", &format!("{OWN_DNS}/32"), "dev", "lo"])
        .status()
        .expect("run ip");
    assert!(st.success(), "ip addr add {OWN_DNS}");
}

fn sa(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn network() -> NetworkFile {
    NetworkFile {
        sources: Vec::new(),
        internal: false,
        network: "app".into(),
        listen: vec![LISTEN.parse().unwrap()],
        upstreams: vec![sa(UPSTREAM, 53)],
        records: vec![
            R {
                id: ID.into(),
                names: vec!["web".into(), "www".into()],
                ipv4: vec!["127.0.0.10".parse().unwrap()],
                ipv6: vec![],
                dns_servers: vec![],
            },
            R {
                id: "aa".repeat(32),
                names: vec!["own".into()],
                ipv4: vec!["127.0.0.11".parse().unwrap()],
                ipv6: vec!["fd00::11".parse().unwrap()],
                dns_servers: vec![sa(OWN_DNS, 53)],
            },
        ],
    }
}

struct Responder {
    child: Child,
    dir: PathBuf,
}

impl Responder {
    fn start(dir: &Path) -> Responder {
        let log = std::fs::File::create(dir.join("test.log")).unwrap();
        let child = Command::new(EXE)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Responder {
            child,
            dir: dir.to_owned(),
        };
        let until = Instant::now() + Duration::from_secs(5);
        while control::running(dir) != Some(r.child.id() as i32) {
            assert!(
                Instant::now() < until,
                "the responder did not become ready: {}",
                r.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        r
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("test.log")).unwrap_or_default()
    }

    fn status(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = s.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fake resolver on `ip` port 53 (UDP and TCP): answers every A query
/// with `udp_answer` (over TCP with `tcp_answer`), and `big.example` over
/// UDP with the TC bit set; stops when dropped.
struct FakeUpstream {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn canned(q: &[u8], a: Ipv4Addr, tc: bool) -> Option<Vec<u8>> {
    let req = Message::from_vec(q).ok()?;
    let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    m.metadata.recursion_desired = req.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.queries = req.queries.clone();
    let name = req.queries.first()?.name().clone();
    if tc && name.to_ascii() == "big.example." {
        m.metadata.truncation = true;
    } else {
        m.answers.push(Record::from_rdata(name, 30, RData::A(A(a))));
    }
    m.to_vec().ok()
}

impl FakeUpstream {
    fn start(ip: &str, udp_answer: Ipv4Addr, tcp_answer: Ipv4Addr) -> FakeUpstream {
        let stop = Arc::new(AtomicBool::new(false));
        let udp = UdpSocket::bind(sa(ip, 53)).unwrap();
        udp.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let tcp = TcpListener::bind(sa(ip, 53)).unwrap();
        tcp.set_nonblocking(true).unwrap();
        let s1 = stop.clone();
        let t1 = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !s1.load(Ordering::Relaxed) {
                if let Ok((n, from)) = udp.recv_from(&mut buf) {
                    if let Some(r) = canned(&buf[..n], udp_answer, true) {
                        let _ = udp.send_to(&r, from);
                    }
                }
            }
        });
        let s2 = stop.clone();
        let t2 = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                let Ok((mut c, _)) = tcp.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                c.set_nonblocking(false).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut len = [0u8; 2];
                if c.read_exact(&mut len).is_err() {
                    continue;
                }
                let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if c.read_exact(&mut q).is_err() {
                    continue;
                }
                if let Some(r) = canned(&q, tcp_answer, false) {
                    let _ = c.write_all(&(r.len() as u16).to_be_bytes());
                    let _ = c.write_all(&r);
                }
            }
        });
        FakeUpstream {
            stop,
            threads: vec![t1, t2],
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn query_bytes(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::new(0xBEEF, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m.to_vec().unwrap()
}

fn udp_query_timeout(from: &str, name: &str, t: RecordType, timeout: Duration) -> Option<Message> {
    let s = UdpSocket::bind(sa(from, 0)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.send_to(&query_bytes(name, t), sa(LISTEN, 53)).unwrap();
    let mut buf = [0u8; 65536];
    let n = s.recv(&mut buf).ok()?;
    Some(Message::from_vec(&buf[..n]).unwrap())
}

fn udp_query(from: &str, name: &str, t: RecordType) -> Message {
    udp_query_timeout(from, name, t, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("no answer over UDP to {name} {t} from {from}"))
}

fn tcp_query(from: &str, name: &str, t: RecordType) -> Message {
    let s = std::net::TcpStream::connect(sa(LISTEN, 53)).unwrap();
    let _ = from; // the kernel picks 127.0.0.1 as the source
    tcp_exchange(&s, &query_bytes(name, t)).unwrap_or_else(|e| panic!("TCP query {name}: {e}"))
}

fn tcp_exchange(mut s: &TcpStream, q: &[u8]) -> std::io::Result<Message> {
    s.set_read_timeout(Some(Duration::from_secs(6)))?;
    s.write_all(&(q.len() as u16).to_be_bytes())?;
    s.write_all(q)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut r = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut r)?;
    Ok(Message::from_vec(&r).unwrap())
}

fn a_records(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn answers_and_forwards_over_udp_and_tcp() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        control::write_network(dir.path(), "app", &network()).unwrap();
        let _up = FakeUpstream::start(UPSTREAM, UP_UDP, UP_TCP);
        let _own = FakeUpstream::start(OWN_DNS, OWN_UDP, OWN_UDP);
        let r = Responder::start(dir.path());
        let from = "127.0.0.10";
        for n in ["web", "WWW.dns.berth.", &ID[..12], &ID[..30]] {
            let m = udp_query(from, n, RecordType::A);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{n}");
            assert_eq!(a_records(&m), [ip("127.0.0.10")], "{n}");
        }
        // Ours without an AAAA: NOERROR, no answers.
        let m = udp_query(from, "web", RecordType::AAAA);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
        assert_eq!(
            a_records(&udp_query(from, "own", RecordType::AAAA)),
            [ip("fd00::11")]
        );
        // PTR.
        let m = udp_query(from, "10.0.0.127.in-addr.arpa.", RecordType::PTR);
        match &m.answers[0].data {
            RData::PTR(p) => assert_eq!(p.0.to_ascii(), "web.dns.berth."),
            other => panic!("{other:?}"),
        }
        // Unknown under our domain: NXDOMAIN.
        let m = udp_query(from, "nosuch.dns.berth", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // Forwarded over UDP, with the TC bit relayed.
        assert_eq!(
            a_records(&udp_query(from, "example.com.", RecordType::A)),
            [IpAddr::V4(UP_UDP)]
        );
        let m = udp_query(from, "big.example.", RecordType::A);
        assert!(m.metadata.truncation, "the TC bit is relayed");
        // The container with its own --dns servers: forwarded there.
        assert_eq!(
            a_records(&udp_query("127.0.0.11", "example.com.", RecordType::A)),
            [IpAddr::V4(OWN_UDP)]
        );
        // TCP: ours, and forwarded over TCP.
        assert_eq!(
            a_records(&tcp_query(from, "web", RecordType::A)),
            [ip("127.0.0.10")]
        );
        assert_eq!(
            a_records(&tcp_query(from, "example.com.", RecordType::A)),
            [IpAddr::V4(UP_TCP)]
        );
        // Two queries on one TCP connection.
        let s = TcpStream::connect(sa(LISTEN, 53)).unwrap();
        for _ in 0..2 {
            assert_eq!(
                a_records(&tcp_exchange(&s, &query_bytes("www", RecordType::A)).unwrap()),
                [ip("127.0.0.10")]
            );
        }
        assert!(
            r.log().contains("serving 1 network(s), 2 record(s)"),
            "{}",
            r.log()
        );
    });
}

#[test]
fn sighup_reloads_records_and_addresses() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        control::write_network(dir.path(), "app", &network()).unwrap();
        let _up = FakeUpstream::start(UPSTREAM, UP_UDP, UP_TCP);
        let r = Responder::start(dir.path());
        let from = "127.0.0.10";
        assert_eq!(
            a_records(&udp_query(from, "web", RecordType::A)),
            [ip("127.0.0.10")]
        );
        let mut f = network();
        f.records[0].names = vec!["renamed".into()];
        control::write_network(dir.path(), "app", &f).unwrap();
        let other = NetworkFile {
            sources: Vec::new(),
            internal: false,
            network: "other".into(),
            listen: vec![ip("127.0.0.5")],
            upstreams: vec![],
            records: vec![R {
                id: "bb".repeat(32),
                names: vec!["db".into()],
                ipv4: vec!["127.0.0.30".parse().unwrap()],
                ..R::default()
            }],
        };
        control::write_network(dir.path(), "other", &other).unwrap();
        let (started, done) = berth_dns::server::read_reloads(dir.path()).unwrap();
        assert_eq!((started, done), (1, 1), "the first load");
        control::sync(dir.path(), Path::new(EXE)).unwrap();
        assert_eq!(
            berth_dns::server::read_reloads(dir.path()),
            Some((2, 2)),
            "sync waited for the reload"
        );
        assert_eq!(
            control::running(dir.path()),
            Some(r.child.id() as i32),
            "reloaded, not restarted"
        );
        // sync returned: the reload is done.
        let m = udp_query(from, "renamed", RecordType::A);
        assert_eq!(a_records(&m), [ip("127.0.0.10")], "{}", r.log());
        let m = udp_query(from, "web.dns.berth", RecordType::A);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "the old name is gone"
        );
        // The new network is served on its own address only.
        let s = UdpSocket::bind(sa(from, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(&query_bytes("db", RecordType::A), sa("127.0.0.5", 53))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf).unwrap();
        assert_eq!(
            a_records(&Message::from_vec(&buf[..n]).unwrap()),
            [ip("127.0.0.30")]
        );
        let m = udp_query(from, "db.dns.berth", RecordType::A);
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "another network's names are not visible"
        );
        // Removing the network closes its address.
        control::remove_network(dir.path(), "other").unwrap();
        control::remove_network(dir.path(), "other").unwrap();
        control::sync(dir.path(), Path::new(EXE)).unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            let s = UdpSocket::bind(sa(from, 0)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            s.send_to(&query_bytes("db", RecordType::A), sa("127.0.0.5", 53))
                .unwrap();
            if s.recv(&mut buf).is_err() {
                break;
            }
            assert!(
                Instant::now() < until,
                "127.0.0.5 still answers after its network was removed"
            );
        }
        assert!(r.log().contains("serving 1 network(s)"), "{}", r.log());
    });
}

#[test]
fn servfail_when_upstreams_are_dead_and_next_upstream_tried() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut f = network();
        // Nothing listens on 127.0.0.6: refused at once.
        f.upstreams = vec![sa("127.0.0.6", 53)];
        control::write_network(dir.path(), "app", &f).unwrap();
        let r = Responder::start(dir.path());
        let t = Instant::now();
        let m = udp_query("127.0.0.10", "example.com.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(m.queries[0].name().to_ascii(), "example.com.");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "a refused upstream fails at once: {:?}",
            t.elapsed()
        );
        let m = tcp_query("127.0.0.10", "example.com.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        // A silent upstream first (bound, never answers), then a live one.
        let _silent = UdpSocket::bind(sa("127.0.0.7", 53)).unwrap();
        let _up = FakeUpstream::start(UPSTREAM, UP_UDP, UP_TCP);
        f.upstreams = vec![sa("127.0.0.7", 53), sa(UPSTREAM, 53)];
        control::write_network(dir.path(), "app", &f).unwrap();
        control::sync(dir.path(), Path::new(EXE)).unwrap();
        let t = Instant::now();
        assert_eq!(
            a_records(&udp_query("127.0.0.10", "example.org.", RecordType::A)),
            [IpAddr::V4(UP_UDP)]
        );
        assert!(
            t.elapsed() >= Duration::from_millis(1900),
            "the silent one was tried first: {:?}",
            t.elapsed()
        );
        drop(r);
    });
}

#[test]
fn flood_of_garbage_keeps_answering_with_bounded_memory() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        control::write_network(dir.path(), "app", &network()).unwrap();
        let r = Responder::start(dir.path());
        let hwm_before = r.status("VmHWM:");
        let stop = Arc::new(AtomicBool::new(false));
        let mut floods = Vec::new();
        for k in 0..2u64 {
            let stop = stop.clone();
            floods.push(std::thread::spawn(move || {
                let s = UdpSocket::bind(sa(&format!("127.0.0.{}", 20 + k), 0)).unwrap();
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ k;
                let good = query_bytes("web", RecordType::A);
                let mut sent = 0u64;
                while sent < 50_000 && !stop.load(Ordering::Relaxed) {
                    let mut b = good.clone();
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Garbage in the question (FORMERR), random lengths, and
                    // sometimes a whole random datagram.
                    let len = 13 + (x % 500) as usize;
                    b.resize(len, (x >> 8) as u8);
                    b[12] = (x >> 16) as u8;
                    if x % 3 == 0 {
                        b.iter_mut()
                            .enumerate()
                            .for_each(|(i, c)| *c = (x >> (i % 56)) as u8);
                    }
                    if s.send_to(&b, sa(LISTEN, 53)).is_ok() {
                        sent += 1;
                    }
                }
                sent
            }));
        }
        // Meanwhile another container's queries are answered (a datagram
        // may be lost when the flood fills the socket's buffer: like a
        // resolver, it asks again after 500 ms, 3 times at most).
        let (mut asked, mut answered, mut retries) = (0, 0, 0);
        while asked < 20 || !floods.iter().all(|t| t.is_finished()) {
            asked += 1;
            for _ in 0..3 {
                let timeout = Duration::from_millis(500);
                if let Some(m) = udp_query_timeout("127.0.0.10", "web", RecordType::A, timeout) {
                    if a_records(&m) == [ip("127.0.0.10")] {
                        answered += 1;
                    }
                    break;
                }
                retries += 1;
            }
            assert!(asked < 100_000);
        }
        stop.store(true, Ordering::Relaxed);
        let sent: u64 = floods.into_iter().map(|t| t.join().unwrap()).sum();
        eprintln!("{answered} of {asked} good queries answered ({retries} retries) during a flood of {sent}");
        assert_eq!(answered, asked, "good queries unanswered during the flood");
        assert!(
            retries <= 3 + asked / 10,
            "{retries} retries for {asked} good queries"
        );
        assert!(sent >= 100_000, "the flood sent {sent}");
        // Still answering, and memory bounded.
        assert_eq!(
            a_records(&udp_query("127.0.0.10", "web", RecordType::A)),
            [ip("127.0.0.10")]
        );
        let hwm = r.status("VmHWM:");
        eprintln!("VmHWM before the flood {hwm_before} kB, after {sent} garbage queries {hwm} kB");
        assert!(
            hwm < hwm_before + 1024 && hwm < 8192,
            "VmHWM grew from {hwm_before} kB to {hwm} kB"
        );
        assert!(
            r.log().contains("exceed"),
            "the throttling is logged: {}",
            r.log()
        );
    });
}

#[test]
fn tcp_connections_are_bounded_and_new_clients_still_served() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        control::write_network(dir.path(), "app", &network()).unwrap();
        let r = Responder::start(dir.path());
        // 300 idle connections from 30 sources.
        let mut idle = Vec::new();
        for i in 0..300 {
            let src = format!("127.0.1.{}", i % 30 + 1);
            let s = socket2_like_connect(&src);
            idle.push(s);
        }
        std::thread::sleep(Duration::from_millis(200));
        let m = tcp_query("127.0.0.1", "web", RecordType::A);
        assert_eq!(a_records(&m), [ip("127.0.0.10")]);
        let fds = std::fs::read_dir(format!("/proc/{}/fd", r.child.id()))
            .unwrap()
            .count();
        assert!(fds < 200, "the responder holds {fds} descriptors");
    });
}

/// A TCP connection to the responder from `src`.
fn socket2_like_connect(src: &str) -> Option<TcpStream> {
    // SAFETY: socket, bind and connect on a new socket with valid sockaddrs.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let mk = |ip: &str, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.parse::<Ipv4Addr>().unwrap().octets()),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let b = mk(src, 0);
        assert_eq!(libc::bind(fd, std::ptr::addr_of!(b).cast(), len), 0);
        let c = mk(LISTEN, 53);
        if libc::connect(fd, std::ptr::addr_of!(c).cast(), len) != 0 {
            libc::close(fd);
            return None;
        }
        use std::os::fd::FromRawFd;
        Some(TcpStream::from_raw_fd(fd))
    }
}

fn responders_for(dir: &Path) -> Vec<i32> {
    let want = dir.as_os_str().as_encoded_bytes();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        if args.first().is_some_and(|a| a.ends_with(b"berth-dns")) && args.contains(&want) {
            // Not a zombie.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if !stat.contains(") Z ") {
                pids.push(pid);
            }
        }
    }
    pids
}

#[test]
fn sync_from_four_threads_starts_exactly_one_and_stop_stops_it() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("dns");
        // No records: sync starts nothing.
        let mut empty = network();
        empty.records.clear();
        control::write_network(&d, "app", &empty).unwrap();
        control::sync(&d, Path::new(EXE)).unwrap();
        assert_eq!(control::running(&d), None);
        assert!(responders_for(&d).is_empty());

        control::write_network(&d, "app", &network()).unwrap();
        // A descriptor of the caller without O_CLOEXEC (say, a lock): the
        // responder must not keep it.
        let leak = dir.path().join("leak");
        std::fs::write(&leak, "").unwrap();
        let c = std::ffi::CString::new(leak.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: open of a path we made; closed below.
        let leak_fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
        assert!(leak_fd >= 0);
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (d, b) = (d.clone(), barrier.clone());
                std::thread::spawn(move || {
                    b.wait();
                    control::sync(&d, Path::new(EXE))
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let guard = KillOnDrop(d.clone());
        std::thread::sleep(Duration::from_millis(300)); // losers have exited
        let pids = responders_for(&d);
        assert_eq!(pids.len(), 1, "responders: {pids:?}");
        assert_eq!(control::running(&d), Some(pids[0]));
        assert_eq!(
            a_records(&udp_query("127.0.0.10", "web", RecordType::A)),
            [ip("127.0.0.10")]
        );
        // Not our child: detached in its own session.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pids[0])).unwrap();
        let fields: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
        assert_ne!(
            fields[1].parse::<u32>().unwrap(),
            std::process::id(),
            "parent"
        );
        assert_eq!(fields[3], pids[0].to_string(), "session leader");
        assert_eq!(
            std::fs::read_link(format!("/proc/{}/cwd", pids[0])).unwrap(),
            Path::new("/")
        );
        for fd in std::fs::read_dir(format!("/proc/{}/fd", pids[0]))
            .unwrap()
            .flatten()
        {
            assert_ne!(
                std::fs::read_link(fd.path()).ok().as_deref(),
                Some(leak.as_path()),
                "inherited fd"
            );
        }
        // SAFETY: closes the descriptor opened above.
        unsafe { libc::close(leak_fd) };

        // Killed -9: the pid file stays, unheld; sync starts a new one.
        // SAFETY: kill of the responder this test started.
        unsafe { libc::kill(pids[0], libc::SIGKILL) };
        let until = Instant::now() + Duration::from_secs(2);
        while control::running(&d).is_some() {
            assert!(Instant::now() < until);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(d.join(control::PID_FILE).exists());
        control::sync(&d, Path::new(EXE)).unwrap();
        let again = control::running(&d).expect("a new responder");
        assert_ne!(again, pids[0]);
        assert_eq!(
            a_records(&udp_query("127.0.0.10", "web", RecordType::A)),
            [ip("127.0.0.10")]
        );

        // stop.
        control::stop(&d).unwrap();
        assert_eq!(control::running(&d), None);
        let until = Instant::now() + Duration::from_secs(2);
        while !responders_for(&d).is_empty() {
            assert!(Instant::now() < until, "still running after stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        control::stop(&d).unwrap(); // none: Ok

        // The last records removed: sync tells the responder (without
        // waiting for it), which serves no name from then on (its listener
        // closed) but lingers; records again within server::LINGER reload
        // that same responder rather than start another.
        control::sync(&d, Path::new(EXE)).unwrap();
        let first = control::running(&d).expect("a responder");
        let (_, done) = server::read_reloads(&d).unwrap();
        control::write_network(&d, "app", &empty).unwrap();
        control::sync(&d, Path::new(EXE)).unwrap();
        let until = Instant::now() + Duration::from_secs(2);
        while server::read_reloads(&d).is_none_or(|(_, now)| now == done) {
            assert!(
                Instant::now() < until,
                "no reload after the last records went"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // (The network's file is still there, without records: its
        // address may still answer, NXDOMAIN or a forward, never `web`.)
        let late = udp_query_timeout(
            "127.0.0.10",
            "web",
            RecordType::A,
            Duration::from_millis(300),
        );
        assert!(
            late.as_ref().is_none_or(|m| a_records(m).is_empty()),
            "a name still served after its records went: {late:?}"
        );
        assert_eq!(control::running(&d), Some(first), "it lingers");
        control::write_network(&d, "app", &network()).unwrap();
        control::sync(&d, Path::new(EXE)).unwrap();
        assert_eq!(
            a_records(&udp_query("127.0.0.10", "web", RecordType::A)),
            [ip("127.0.0.10")]
        );
        assert_eq!(
            control::running(&d),
            Some(first),
            "the lingering responder was not reused"
        );
        // Without records for LINGER, it exits on its own.
        control::write_network(&d, "app", &empty).unwrap();
        control::sync(&d, Path::new(EXE)).unwrap();
        let gone = Instant::now();
        let until = gone + server::LINGER + Duration::from_secs(2);
        while control::running(&d).is_some() || !responders_for(&d).is_empty() {
            assert!(
                Instant::now() < until,
                "still running {} s after the last records went",
                (server::LINGER + Duration::from_secs(2)).as_secs()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            gone.elapsed() + Duration::from_millis(100) >= server::LINGER,
            "it did not linger: gone after {:?}",
            gone.elapsed()
        );
        // sync_or_stop (a network's removal) stops it at once.
        control::write_network(&d, "app", &network()).unwrap();
        control::sync(&d, Path::new(EXE)).unwrap();
        control::write_network(&d, "app", &empty).unwrap();
        control::sync_or_stop(&d, Path::new(EXE)).unwrap();
        let until = Instant::now() + Duration::from_secs(1);
        while control::running(&d).is_some() || !responders_for(&d).is_empty() {
            assert!(Instant::now() < until, "sync_or_stop left it running");
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(guard);
    });
}

/// Kills every responder of a directory when a test fails half-way.
struct KillOnDrop(PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in responders_for(&self.0) {
            // SAFETY: kill of a responder this test started (its --dir is
            // this test's temporary directory).
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[test]
fn write_network_is_atomic_and_checks_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("new");
    control::write_network(&d, "n1", &network()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let back: NetworkFile =
        serde_json::from_slice(&std::fs::read(d.join("n1.json")).unwrap()).unwrap();
    assert_eq!(back, network());
    // No temporary file left behind.
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 1);
    for bad in ["", "../x", "a/b", ".hidden"] {
        let e = control::write_network(&d, bad, &network()).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
    }
    control::remove_network(&d, "n1").unwrap();
    control::remove_network(&d, "n1").unwrap();
    assert_eq!(control::running(&d), None);
}

/// Adds `ip`/32 to `lo` (as the label lo:1).
fn add_lo_address(ip: Ipv4Addr) {
    // SAFETY: an ioctl on a socket we own with a zeroed, named ifreq that
    // holds a sockaddr_in.
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(s >= 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, c) in ifr.ifr_name.iter_mut().zip(b"lo:1\0") {
            *d = *c as libc::c_char;
        }
        let sin = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(ip.octets()),
            },
            sin_zero: [0; 8],
        };
        std::ptr::write(
            std::ptr::addr_of_mut!(ifr.ifr_ifru).cast::<libc::sockaddr_in>(),
            sin,
        );
        let r = libc::ioctl(s, libc::SIOCSIFADDR, &ifr);
        assert_eq!(r, 0, "add {ip} to lo: {}", std::io::Error::last_os_error());
        libc::close(s);
    }
}

#[test]
fn listens_on_an_address_that_appears_later() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut f = network();
        // Not on any interface yet (the bridge is being made): free-bind.
        f.listen = vec![ip("10.99.0.1")];
        control::write_network(dir.path(), "app", &f).unwrap();
        let r = Responder::start(dir.path());
        assert!(
            r.log().contains("(1 bound, 0 closed, 0 failed)"),
            "{}",
            r.log()
        );
        add_lo_address(Ipv4Addr::new(10, 99, 0, 1));
        let s = UdpSocket::bind(sa("10.99.0.1", 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(&query_bytes("web", RecordType::A), sa("10.99.0.1", 53))
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s
            .recv(&mut buf)
            .expect("an answer on the address that appeared");
        assert_eq!(
            a_records(&Message::from_vec(&buf[..n]).unwrap()),
            [ip("127.0.0.10")]
        );
    });
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let f: Vec<&str> = stat.rsplit(") ").next().unwrap().split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn tcp_client_gone_while_forwarding_does_not_spin() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut f = network();
        // Never answers: the forward stays in flight for the whole timeout.
        let _silent = UdpSocket::bind(sa("127.0.0.7", 53)).unwrap();
        let silent_tcp = TcpListener::bind(sa("127.0.0.7", 53)).unwrap();
        f.upstreams = vec![sa("127.0.0.7", 53)];
        control::write_network(dir.path(), "app", &f).unwrap();
        let r = Responder::start(dir.path());
        let s = TcpStream::connect(sa(LISTEN, 53)).unwrap();
        let q = query_bytes("example.com.", RecordType::A);
        let mut framed = (q.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&q);
        (&s).write_all(&framed).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // Reset the connection (SO_LINGER 0, then close).
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on our socket with a linger value.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                std::ptr::addr_of!(linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(s);
        let before = cpu_ticks(r.child.id());
        std::thread::sleep(Duration::from_millis(1000));
        let used = cpu_ticks(r.child.id()) - before;
        assert!(
            used < 20,
            "the responder used {used} ticks in 1 s with an idle forward"
        );
        // Still serving.
        assert_eq!(
            a_records(&udp_query("127.0.0.10", "web", RecordType::A)),
            [ip("127.0.0.10")]
        );
        drop(silent_tcp);
    });
}

#[test]
fn out_of_descriptors_pauses_accepts_instead_of_spinning() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        control::write_network(dir.path(), "app", &network()).unwrap();
        let r = Responder::start(dir.path());
        let pid = r.child.id();
        let open = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count() as u64;
        // Room for 3 more descriptors only.
        let lim = libc::rlimit {
            rlim_cur: open + 3,
            rlim_max: open + 3,
        };
        // SAFETY: prlimit of our child with a valid rlimit.
        let rc = unsafe {
            libc::prlimit(
                pid as libc::pid_t,
                libc::RLIMIT_NOFILE,
                &lim,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
        let conns: Vec<_> = (0..10)
            .map(|_| TcpStream::connect(sa(LISTEN, 53)).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        let before = cpu_ticks(pid);
        std::thread::sleep(Duration::from_millis(1000));
        let used = cpu_ticks(pid) - before;
        assert!(
            used < 20,
            "the responder used {used} ticks in 1 s out of descriptors"
        );
        assert!(r.log().contains("pausing accepts"), "{}", r.log());
        // UDP is still answered.
        assert_eq!(
            a_records(&udp_query("127.0.0.10", "web", RecordType::A)),
            [ip("127.0.0.10")]
        );
        drop(conns);
    });
}

#[test]
fn a_fast_client_of_an_idle_responder_is_not_limited() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        control::write_network(dir.path(), "app", &network()).unwrap();
        let r = Responder::start(dir.path());
        // One query at a time, from one source, as fast as answers come:
        // above the per-source rate for a while, but no backlog.
        let s = UdpSocket::bind(sa("127.0.0.10", 0)).unwrap();
        s.connect(sa(LISTEN, 53)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        let q = query_bytes("web", RecordType::A);
        let mut buf = [0u8; 512];
        let t = Instant::now();
        let n = 3 * berth_dns::server::BURST_PER_SOURCE as usize;
        for i in 0..n {
            s.send(&q).unwrap();
            s.recv(&mut buf)
                .unwrap_or_else(|e| panic!("query {i} of {n} unanswered: {e}\n{}", r.log()));
        }
        let rate = n as f64 / t.elapsed().as_secs_f64();
        eprintln!("{n} sequential queries at {rate:.0}/s");
        assert!(!r.log().contains("exceed"), "{}", r.log());
    });
}

#[test]
fn serves_an_ipv6_address() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut f = network();
        f.listen = vec![ip("::1")];
        control::write_network(dir.path(), "app", &f).unwrap();
        let r = Responder::start(dir.path());
        assert!(
            r.log().contains("(1 bound, 0 closed, 0 failed)"),
            "{}",
            r.log()
        );
        let s = UdpSocket::bind("[::1]:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.send_to(&query_bytes("own", RecordType::AAAA), "[::1]:53")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf).expect("an answer over IPv6");
        assert_eq!(
            a_records(&Message::from_vec(&buf[..n]).unwrap()),
            [ip("fd00::11")]
        );
        let t = TcpStream::connect("[::1]:53").unwrap();
        let m = tcp_exchange(&t, &query_bytes("web", RecordType::A)).unwrap();
        assert_eq!(a_records(&m), [ip("127.0.0.10")]);
    });
}

#[test]
fn forwards_in_flight_are_bounded_per_source() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut f = network();
        // Never answers: every forward stays in flight for the timeout.
        let _silent = UdpSocket::bind(sa("127.0.0.7", 53)).unwrap();
        f.upstreams = vec![sa("127.0.0.7", 53)];
        control::write_network(dir.path(), "app", &f).unwrap();
        let r = Responder::start(dir.path());
        let fds = || {
            std::fs::read_dir(format!("/proc/{}/fd", r.child.id()))
                .unwrap()
                .count()
        };
        let base = fds();
        let s = UdpSocket::bind(sa("127.0.0.10", 0)).unwrap();
        for i in 0..500u32 {
            s.send_to(
                &query_bytes(&format!("n{i}.example."), RecordType::A),
                sa(LISTEN, 53),
            )
            .unwrap();
        }
        std::thread::sleep(Duration::from_millis(300));
        let in_flight = fds() - base;
        assert!(
            in_flight <= berth_dns::server::MAX_FORWARDS_PER_SOURCE,
            "{in_flight} upstream sockets for one source"
        );
        assert!(in_flight >= 32, "only {in_flight} forwards started");
        // Another source still gets a forward (to its own --dns server,
        // where nothing listens: SERVFAIL at once; a forward refused for
        // lack of room would get no answer).
        let m = udp_query("127.0.0.11", "example.org.", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    });
}

#[test]
fn idle_and_dripping_tcp_clients_are_closed() {
    in_netns(|| {
        let dir = tempfile::tempdir().unwrap();
        control::write_network(dir.path(), "app", &network()).unwrap();
        let _r = Responder::start(dir.path());
        let idle = TcpStream::connect(sa(LISTEN, 53)).unwrap();
        let drip = TcpStream::connect(sa(LISTEN, 53)).unwrap();
        let t = Instant::now();
        // A query that never completes: its length says 300, a byte a second.
        (&drip).write_all(&[1, 44]).unwrap();
        let mut closed = [None, None];
        let limit = berth_dns::server::TCP_IDLE + Duration::from_secs(3);
        while closed.iter().any(Option::is_none) && t.elapsed() < limit {
            std::thread::sleep(Duration::from_millis(1000));
            for (i, s) in [&idle, &drip].into_iter().enumerate() {
                if closed[i].is_some() {
                    continue;
                }
                let _ = (&drip).write_all(&[0]);
                s.set_nonblocking(true).unwrap();
                let mut b = [0u8; 1];
                match (&*s).read(&mut b) {
                    Ok(0) => closed[i] = Some(t.elapsed()),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    _ => closed[i] = Some(t.elapsed()),
                }
            }
        }
        for (what, c) in ["idle", "dripping"].iter().zip(closed) {
            let c =
                c.unwrap_or_else(|| panic!("the {what} connection is still open after {limit:?}"));
            assert!(
                c >= berth_dns::server::TCP_IDLE - Duration::from_secs(1),
                "{what} closed early: {c:?}"
            );
        }
    });
}
