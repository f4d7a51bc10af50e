//! The formats berth's monitor reads from others: attach frames from
//! clients, its config and state files, container log lines (json-file,
//! k8s-file) and the runtime's JSON log. No input may panic; what the
//! writers produce must read back the same.
#![no_main]
use berth_monitor_proto::{config, frame, logfmt, state};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut d = frame::Decoder::default();
    d.feed(data);
    while let Ok(Some((kind, payload))) = d.next_frame() {
        // Re-encoding a decoded frame gives its bytes back.
        let again = frame::encode(kind, &payload);
        let mut d2 = frame::Decoder::default();
        d2.feed(&again);
        assert_eq!(d2.next_frame().unwrap(), Some((kind, payload)));
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(c) = config::Config::parse(&text) {
        if let Ok(t) = c.to_text() {
            assert_eq!(config::Config::parse(&t).unwrap(), c);
        }
    }
    let _ = config::parse_detach_keys(&text);
    let _ = config::Restart::parse(&text);
    if let Ok(s) = state::State::parse(&text) {
        let back = state::State::parse(&s.to_text()).unwrap();
        assert_eq!(back.status, s.status);
        assert_eq!(back.exit_code, s.exit_code);
    }
    let _ = logfmt::parse_rfc3339(&text);
    let _ = logfmt::parse_fields(data);
    let _ = logfmt::parse_k8s(data);
    if let Some(e) = logfmt::parse_json(data) {
        let _ = logfmt::rfc3339_nano(e.time);
    }
    // What the monitor writes reads back.
    let time = i64::from_le_bytes(data.iter().copied().chain([0; 8]).take(8).collect::<Vec<_>>().try_into().unwrap())
        .rem_euclid(4_000_000_000_000_000_000);
    let mut out = Vec::new();
    logfmt::json_line(&mut out, logfmt::Stream::Stdout, data, time);
    let e = logfmt::parse_json(&out[..out.len() - 1]).expect("our json-file line");
    assert_eq!(e.text, String::from_utf8_lossy(data).as_bytes());
    assert_eq!(e.time, time);
    if !data.contains(&b'\n') {
        let mut out = Vec::new();
        logfmt::k8s_line(&mut out, logfmt::Stream::Stderr, data, time);
        let e = logfmt::parse_k8s(&out[..out.len() - 1]).expect("our k8s-file line");
        assert_eq!(e.text, data);
        assert!(e.partial);
    }
});
