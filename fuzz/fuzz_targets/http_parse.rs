//! `grove::http::parse_head` on arbitrary bytes: never panics, and what it answers is
//! consistent: a complete head's length is within the input, the head alone parses to the
//! same head, one byte less is incomplete (or the same error class), the resumable scanner
//! fed byte by byte agrees with the one-shot parse; the body that follows decodes without
//! panicking, within the input.
//!
//!   cargo +nightly fuzz run http_parse
#![no_main]

use grove::http::{parse_head, BodyDecoder, HeadScanner, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    // Small limits half the time, so the limit paths are reached with short inputs.
    let limits = if mode & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_request_line: 32,
            max_header_bytes: 64,
            max_headers: 4,
            max_body: 64,
            max_chunk_ext_bytes: 16,
            max_trailer_bytes: 32,
            read_chunk: 16,
        }
    };
    let whole = parse_head(data, &limits);

    // The resumable scanner, fed one more byte each time, reaches the same answer.
    let mut scanner = HeadScanner::new();
    let mut incremental = Ok(None);
    for i in 0..=data.len() {
        incremental = scanner.scan(&data[..i], &limits);
        if !matches!(incremental, Ok(None)) {
            break;
        }
    }
    match (&whole, &incremental) {
        (Ok(Some((_, n))), Ok(Some(m))) => assert_eq!(n, m),
        (Ok(None), Ok(None)) => {}
        (Err(_), Err(_)) => {}
        // The head was found, then building it failed.
        (Err(_), Ok(Some(_))) => {}
        other => panic!("one-shot and incremental disagree: {other:?}"),
    }

    if let Ok(Some((head, n))) = whole {
        assert!(n <= data.len() && n > 0);
        let again = parse_head(&data[..n], &limits).expect("the head alone parses");
        assert_eq!(again.as_ref().map(|(h, m)| (h, *m)), Some((&head, n)));
        assert_eq!(parse_head(&data[..n - 1], &limits), Ok(None));
        let _ = head.clone().into_request(());

        let mut dec = BodyDecoder::new(head.body, &limits);
        let mut rest = &data[n..];
        let max = usize::from(mode >> 1).max(1);
        while !rest.is_empty() && !dec.is_done() {
            let Ok(d) = dec.decode(rest, max) else { break };
            assert!(d.consumed <= rest.len());
            assert!(d.data.start <= d.data.end && d.data.end <= d.consumed);
            assert!(d.data.len() <= max);
            if d.consumed == 0 {
                break;
            }
            rest = &rest[d.consumed..];
        }
    }
});
