//! Greenlet-local storage: [`greenlet_local!`](crate::greenlet_local) works like
//! `thread_local!`, with one value per greenlet (gevent's `local`).
//!
//! Each greenlet's header holds (from its first value on) a small map from key (the address of
//! the `static` [`LocalKey`]) to a boxed value, created on first access by the key's initialiser. The
//! values are dropped when the greenlet ends, on its own stack while it is still the current
//! greenlet (so their destructors may use grove), or, for a thread's main greenlet, at thread
//! exit.

use std::any::Any;
use std::cell::{OnceCell, RefCell};

/// The values of one greenlet, keyed by the key's address.
type Map = RefCell<Vec<(usize, Box<dyn Any>)>>;

/// The values of one greenlet: a map made on first use. Most greenlets never have one, and
/// then the header holds one null word, which creating and releasing the greenlet only write
/// and test.
#[derive(Default)]
pub(super) struct Locals(OnceCell<Box<Map>>);

impl Locals {
    /// Drops every value (and any a destructor created meanwhile, a bounded number of times).
    #[inline]
    pub(super) fn clear(&self) {
        if let Some(map) = self.0.get() {
            clear_values(map);
        }
    }

    /// Whether there is nothing to drop: no value, and no memory held for any.
    #[inline]
    pub(super) fn owns_nothing(&self) -> bool {
        self.0.get().is_none()
    }

    /// The map, made on first use.
    fn map(&self) -> &Map {
        self.0.get_or_init(Box::default)
    }
}

/// `Locals::clear` for a greenlet that made values.
#[cold]
fn clear_values(map: &Map) {
    for _ in 0..8 {
        let v = std::mem::take(&mut *map.borrow_mut());
        if v.is_empty() {
            return;
        }
        for (_, value) in v {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(value))).is_err() {
                eprintln!("grove: a greenlet-local value panicked while being dropped");
            }
        }
    }
}

/// A greenlet-local key, made by [`greenlet_local!`](crate::greenlet_local).
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init }
    }

    /// Runs `f` with the running greenlet's value, creating it on first use.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let key = self as *const LocalKey<T> as usize;
        let h = super::current_header();
        // SAFETY: the current greenlet's header is live while it runs, and we are it.
        let locals = unsafe { h.as_ref().locals.map() };
        let found = locals
            .borrow()
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| &**v as *const dyn Any);
        let value = match found {
            Some(p) => p,
            None => {
                // Initialise without holding the borrow: `init` may use other locals.
                let v: Box<dyn Any> = Box::new((self.init)());
                let p = &*v as *const dyn Any;
                locals.borrow_mut().push((key, v));
                p
            }
        };
        // SAFETY: the value is boxed (its address is stable) and is only dropped by
        // `Locals::clear`, which runs after the greenlet's body has returned, when no `with` of
        // this greenlet can be active; the type behind `key` is always `T` (one key, one T).
        let value = unsafe { &*(value as *const T) };
        f(value)
    }
}

/// Declares greenlet-local statics, like `thread_local!`: one value per greenlet, created on
/// first access, dropped when the greenlet ends.
///
/// ```
/// use std::cell::Cell;
/// grove::greenlet_local! {
///     static REQUESTS: Cell<u32> = Cell::new(0);
/// }
/// REQUESTS.with(|r| r.set(5));
/// let g = grove::spawn(|| REQUESTS.with(|r| r.get())); // a fresh value in the new greenlet
/// assert_eq!(g.get(), Ok(0));
/// assert_eq!(REQUESTS.with(|r| r.get()), 5);
/// ```
#[macro_export]
macro_rules! greenlet_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])*
        $vis static $name: $crate::greenlet::LocalKey<$t> = $crate::greenlet::LocalKey::new(|| $init);
        $crate::greenlet_local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::greenlet_local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
