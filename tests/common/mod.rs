//! Helpers shared by the behaviour tests.
#![allow(dead_code)]

use grove::sys::Backend;

/// Runs `body` once per poller backend this platform has, each on a fresh thread whose hub
/// uses that backend.
pub fn each_backend(body: fn(Backend)) {
    for b in Backend::available() {
        std::thread::Builder::new()
            .name(format!("{b:?}"))
            .spawn(move || {
                grove::hub::use_backend(b).unwrap();
                body(b);
                assert_eq!(grove::hub::backend(), b);
            })
            .unwrap()
            .join()
            .unwrap_or_else(|_| panic!("under the {b:?} backend"));
    }
}

/// Runs `body` on a fresh thread whose hub has a paused (virtual) clock.
pub fn paused(body: impl FnOnce() + Send + 'static) {
    std::thread::spawn(move || {
        grove::hub::Builder::new()
            .paused_clock(true)
            .install()
            .unwrap();
        body();
    })
    .join()
    .unwrap_or_else(|_| panic!("under the paused clock"));
}
