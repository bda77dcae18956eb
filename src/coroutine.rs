//! Typed, asymmetric coroutines on grove's switch: `resume` in, `suspend` out, with typed
//! values both ways, on any [`Stack`]. `no_std`.
//!
//! A [`Coroutine<I, Y, R>`](Coroutine) runs a closure on its own stack. [`resume`] hands it an
//! `I` and runs it until it [`suspend`]s with a `Y` or returns an `R`;
//! [`suspend`] hands back the `Y` and waits for the next `I`. This is the model of
//! corosensei or of Python generators: control always returns to whoever resumed, so there
//! is no scheduler, no "current greenlet" to keep, nothing on the heap, and the values go
//! by pointer, not boxed. It is the layer for embedders (it needs neither `std` nor an
//! allocator: bring a [`StaticStack`](crate::stack::StaticStack)) and for code that wants
//! generators; [`greenlet`](crate::greenlet) is the symmetric, dynamically typed layer the
//! hub stands on. Both share the assembly in [`arch`].
//!
//! [`resume`]: Coroutine::resume
//! [`suspend`]: Yielder::suspend
//!
//! ```
//! use grove::coroutine::{Coroutine, CoroutineResult};
//!
//! // Sums what it is given, reporting the running total, until it is given 0.
//! let mut co = Coroutine::new(|y, mut n: u64| {
//!     let mut total = 0;
//!     while n != 0 {
//!         total += n;
//!         n = y.suspend(total);
//!     }
//!     "done"
//! })
//! .unwrap();
//! assert_eq!(co.resume(3), CoroutineResult::Yield(3));
//! assert_eq!(co.resume(4), CoroutineResult::Yield(7));
//! assert_eq!(co.resume(0), CoroutineResult::Return("done"));
//! assert!(co.done());
//! ```
//!
//! # Where things live
//!
//! ```text
//!   top ┌──────────────────────────────┐
//!       │ Yielder: the coroutine's and │  <- the body's `&Yielder`, the Coroutine's pointer
//!       │ its resumer's contexts       │
//!       ├──────────────────────────────┤
//!       │ the closure F (moved in;     │
//!       │ moved out when it starts)    │
//!       ├──────────────────────────────┤
//!       │ link area + initial frame    │  (arch::Context::fresh)
//!       │ ... the body's calls ...     │
//!  base └──────────────────────────────┘
//! ```
//!
//! # Messages
//!
//! Every switch passes one word ([`arch::switch_word`]), which carries the value itself:
//!
//! * a value that fits in a word (a number, a pointer, a reference, `()`...) travels *in* the
//!   word, in a register, as corosensei's do: its bytes, padding and all (the word is a
//!   `MaybeUninit<usize>`, which inline asm passes untouched). Nothing goes through memory, so
//!   a value handed back and forth costs no store and reload on the way;
//! * a larger one stays in the sender's frame, and the word is its address; the receiver moves
//!   it out before the sender can run again.
//!
//! The two rare messages are flagged in the Yielder's `signal` (read after every switch, a
//! predicted branch): `Unwind` from a drop to a suspended body, `Finished` from the entry when
//! the body has ended, the word then the address of its outcome. Going in uses [`arch::switch_word`],
//! coming out [`arch::switch_return_word`], so the return-address predictor stays balanced.
//!
//! # Panics
//!
//! With `std`, a panic in the body is caught at its entry, the coroutine is finished, and
//! [`Coroutine::resume`] resumes the panic in the resumer (as corosensei does). Without
//! `std` nothing can catch it: it reaches the `extern "C"` entry, and the program aborts; it
//! never unwinds into the assembly.
//!
//! # Dropping
//!
//! Dropping a coroutine that has not started drops its closure. Dropping a suspended one,
//! with `std`, unwinds its stack (the body's pending `suspend` panics with a private payload
//! that the entry catches), so its destructors run, as for a greenlet. Without `std` a
//! suspended coroutine cannot be unwound: dropping it *leaks its stack* (the stack value is
//! forgotten, never reused), which is sound (its memory is never reused while values on it
//! may still be referenced) and is the embedder's cue to run coroutines to completion.
//!
//! # Overflow
//!
//! On a stack with a guard (an [`MmapStack`](crate::stack::MmapStack) or the default pooled
//! one), running off the end faults in the guard; with `std` the overflow handler
//! recognises every live coroutine's guard and reports
//! `grove: a coroutine overflowed its <N> KiB stack` before aborting.
//!
//! # Threads and greenlets
//!
//! A coroutine is `!Send`: its stack may hold values tied to the thread. Inside a greenlet, a
//! coroutine runs as part of the greenlet that resumed it: its body may block cooperatively
//! (sleep, read a socket), which suspends that greenlet with the coroutine's stack in use.

use crate::arch::{self, Context, Word};
use crate::stack::{carve_top, closure_below, Stack, TopLayout, MIN_STACK_SIZE};
use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::marker::PhantomData;
use core::mem::{self, ManuallyDrop};
use core::ptr::{self, NonNull};

/// What a switch means beyond its word (see "Messages" in the module docs).
///
/// * `Value`: the word is a value (the only one a live coroutine ever sees, until its end).
/// * `Unwind`: set by a drop before it resumes a suspended body: its `suspend` panics with
///   [`ForcedUnwind`] instead of returning. Final unless the body ends.
/// * `Finished`: set by the entry before its last switch, whose word is the address of the
///   outcome (on the body's stack).
///   Final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    Value,
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    Unwind,
    Finished,
}

/// Whether a `T` travels in the switch's word itself rather than by address.
const fn in_word<T>() -> bool {
    mem::size_of::<T>() <= mem::size_of::<usize>()
}

/// The word that hands `v` over (see "Messages" in the module docs).
///
/// # Safety
///
/// `v` is moved out: the caller must not use or drop it afterwards, and must keep it where it
/// is (in its frame) until the receiver has [`decode`]d the word.
#[inline(always)]
unsafe fn encode<T>(v: &ManuallyDrop<T>) -> Word {
    if in_word::<T>() {
        let mut w = Word::uninit();
        // SAFETY: a T fits in the word's bytes (checked); written unaligned, since a type no
        // larger than a word may still ask for more alignment (a zero-sized `repr(align)`
        // one). `v` is moved out (the caller's promise).
        unsafe { ptr::write_unaligned(w.as_mut_ptr().cast::<T>(), ptr::read(&**v)) };
        w
    } else {
        Word::new(&**v as *const T as usize)
    }
}

/// The value a word from [`encode`] hands over, which moves to the caller.
///
/// # Safety
///
/// `w` must come from `encode::<T>` of a value not yet decoded (and, for one not in the word,
/// still in the sender's frame).
#[inline(always)]
unsafe fn decode<T>(w: Word) -> T {
    if in_word::<T>() {
        // SAFETY: the word holds a T's bytes (the caller's promise).
        unsafe { ptr::read_unaligned(w.as_ptr().cast::<T>()) }
    } else {
        // SAFETY: the word is the address of a live T, which moves to us.
        unsafe { ptr::read(w.assume_init() as *const T) }
    }
}

/// What [`Coroutine::resume`] came back with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoroutineResult<Y, R> {
    /// The body suspended with this value; it can be resumed again.
    Yield(Y),
    /// The body returned this value; the coroutine is finished.
    Return(R),
}

impl<Y, R> CoroutineResult<Y, R> {
    /// The yielded value, if it is one.
    pub fn into_yield(self) -> Option<Y> {
        match self {
            CoroutineResult::Yield(y) => Some(y),
            CoroutineResult::Return(_) => None,
        }
    }

    /// The returned value, if it is one.
    pub fn into_return(self) -> Option<R> {
        match self {
            CoroutineResult::Yield(_) => None,
            CoroutineResult::Return(r) => Some(r),
        }
    }
}

/// The closure does not leave enough of the stack to run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackTooSmall {
    /// Bytes the coroutine's bookkeeping and closure take at the top of the stack.
    pub needed: usize,
    /// Usable bytes of the stack.
    pub available: usize,
}

impl fmt::Display for StackTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "grove: the coroutine's closure and bookkeeping ({} bytes) leave too little of its \
             {} byte stack (at least {} must remain); box the captured data or use a larger \
             stack",
            self.needed,
            self.available,
            MIN_STACK_SIZE / 2
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for StackTooSmall {}

#[cfg(feature = "std")]
impl From<StackTooSmall> for std::io::Error {
    fn from(e: StackTooSmall) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e)
    }
}

/// The body's side of a coroutine, handed to its closure by reference: [`suspend`] hands a
/// value to the resumer and waits to be resumed.
///
/// It lives at the top of the coroutine's stack. It is neither `Send` nor `Sync`, and the
/// closure gets it for the duration of the call only, so it can be used only by the body,
/// while the body runs.
///
/// [`suspend`]: Yielder::suspend
#[repr(C)]
pub struct Yielder<I, Y> {
    /// The body's context: saved when it suspends.
    co: UnsafeCell<Context>,
    /// The resumer's context: saved by [`Coroutine::resume`].
    caller: UnsafeCell<Context>,
    /// What the last switch meant beyond its word.
    signal: Cell<Signal>,
    /// This coroutine's guard, known to the overflow handler.
    #[cfg(feature = "std")]
    guard: guards::Node,
    _marker: PhantomData<fn(Y) -> I>,
}

/// How the body ended, as the entry hands it to the resumer.
enum Outcome<R> {
    Returned(R),
    #[cfg(feature = "std")]
    Panicked(Box<dyn core::any::Any + Send>),
}

/// The payload a suspended coroutine's body unwinds with when the coroutine is dropped. The
/// entry catches it; code in the body that catches panics should let it through
/// (`std::panic::resume_unwind`).
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct ForcedUnwind;

impl<I, Y> Yielder<I, Y> {
    /// Hands `value` to the resumer, whose [`Coroutine::resume`] returns
    /// [`CoroutineResult::Yield`] with it, and waits; returns the input of the next `resume`.
    ///
    /// If the coroutine is dropped while waiting here (with `std`), this panics with
    /// [`ForcedUnwind`] instead, so that the body's stack unwinds.
    #[inline(always)]
    pub fn suspend(&self, value: Y) -> I {
        // The resumer moves the value out before it can resume us: not dropped here.
        let value = ManuallyDrop::new(value);
        // SAFETY: this Yielder is the running coroutine's (only its body holds a reference,
        // and only while it runs), so `co` may receive the running state and `caller` holds
        // the resumer suspended in `resume`, whose stack is alive. `value` stays in this
        // frame until we are resumed, after the resumer decoded the word.
        let back =
            unsafe { arch::switch_return_word(encode(&value), self.co.get(), self.caller.get()) };
        if self.signal.get() == Signal::Unwind {
            forced_unwind();
        }
        // SAFETY: `resume` sent an `I` (the signal says a value), which moves to us.
        unsafe { decode::<I>(back) }
    }
}

#[cold]
fn forced_unwind() -> ! {
    #[cfg(feature = "std")]
    std::panic::resume_unwind(Box::new(ForcedUnwind));
    // Without std, `Signal::Unwind` is never sent.
    #[cfg(not(feature = "std"))]
    unreachable!("grove: coroutine resumed with an unwind request without std")
}

/// Where a coroutine is in its life.
///
/// * `NotStarted` → `Suspended` or `Finished`: the first [`Coroutine::resume`] runs the
///   closure until it suspends or ends.
/// * `Suspended` → `Suspended` or `Finished`: each later `resume`.
/// * `Finished` is final; `resume` then panics. A panic in the body (with `std`) finishes it
///   too.
///
/// The coroutine is never observed while it runs: `resume` borrows it mutably throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    NotStarted,
    Suspended,
    Finished,
}

/// A coroutine: a closure on its own stack that hands `Y`s out and takes `I`s in until it
/// returns an `R`. See the [module docs](self).
///
/// `S` is its stack; with `std` the default is a [`PooledStack`](crate::stack::pool::PooledStack)
/// from this thread's pool, which goes back to the pool when the coroutine is dropped.
pub struct Coroutine<
    I,
    Y,
    R,
    #[cfg(feature = "std")] S: Stack = DefaultStack,
    #[cfg(not(feature = "std"))] S: Stack,
> {
    /// At the top of the stack.
    yielder: NonNull<Yielder<I, Y>>,
    life: Life,
    /// Drops the closure, found from the Yielder's address, while it has not started.
    drop_closure: unsafe fn(*mut u8),
    stack: ManuallyDrop<S>,
    /// Under valgrind, the stack's registration if nothing else registered it.
    #[cfg(feature = "std")]
    _valgrind: crate::stack::valgrind::Registration,
    /// `!Send`, `!Sync`; covariance does not matter here.
    _marker: PhantomData<(*mut (), ResumeFn<I, Y, R>)>,
}

/// The shape of `resume`, for the coroutine's variance marker.
type ResumeFn<I, Y, R> = fn(I) -> CoroutineResult<Y, R>;

/// The stack [`Coroutine::new`] uses: a pooled [`MmapStack`](crate::stack::MmapStack) with
/// a guard page, of [`default_size`](crate::stack::default_size) bytes.
#[cfg(feature = "std")]
pub type DefaultStack = crate::stack::pool::PooledStack;

/// The top of a stack laid out for a coroutine: the Yielder, its closure below it, and the
/// top of the fresh context below both (see [`carve_top`](crate::stack::carve_top)).
fn layout<I, Y, F>(base: usize, top: usize) -> Result<TopLayout, StackTooSmall> {
    carve_top(
        base,
        top,
        core::alloc::Layout::new::<Yielder<I, Y>>(),
        core::alloc::Layout::new::<F>(),
    )
    .ok_or(StackTooSmall {
        needed: (mem::size_of::<Yielder<I, Y>>() + mem::size_of::<F>()).min(top - base),
        available: top - base,
    })
}

/// Where the entry finds the closure: where [`layout`] put it below the Yielder.
fn closure_at<F>(yielder: usize) -> usize {
    closure_below(yielder, core::alloc::Layout::new::<F>()).expect("laid out by `layout`")
}

#[cfg(feature = "std")]
impl<I, Y, R> Coroutine<I, Y, R> {
    /// A coroutine on a stack of [`default_size`](crate::stack::default_size) bytes from this
    /// thread's pool. It does not run until the first [`resume`](Self::resume), which
    /// calls `f(yielder, input)`.
    ///
    /// Fails if no stack can be had (the error says why, e.g. the kernel's map count limit)
    /// or if the closure is too large for it.
    pub fn new<F>(f: F) -> std::io::Result<Self>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'static,
    {
        let stack = crate::stack::pool::PooledStack::new(crate::stack::default_size())?;
        Ok(Self::with_stack(stack, f)?)
    }
}

impl<I, Y, R, S: Stack> Coroutine<I, Y, R, S> {
    /// A coroutine running on `stack`. It does not run until the first
    /// [`resume`](Self::resume), which calls `f(yielder, input)`.
    ///
    /// Fails if `f` (stored at the top of the stack) leaves less than half of
    /// [`MIN_STACK_SIZE`] for the body to run in; the stack is dropped then.
    pub fn with_stack<F>(stack: S, f: F) -> Result<Self, StackTooSmall>
    where
        F: FnOnce(&Yielder<I, Y>, I) -> R + 'static,
    {
        let (base, top) = (stack.base() as usize, stack.top() as usize);
        let at = layout::<I, Y, F>(base, top)?;
        let yielder = at.header as *mut Yielder<I, Y>;
        // SAFETY: `at.closure..at.header` and `at.header..top` lie in the stack's usable
        // range (checked by `layout`), aligned for F and the Yielder, and nothing else uses
        // that memory while the stack is ours. ctx_top is 16-byte aligned with more than
        // MIN_STACK_SIZE / 2 bytes of the stack below it, which only this coroutine will run
        // on; `entry` never returns, and never unwinds (it is extern "C": a panic that
        // reached it would abort).
        unsafe {
            (at.closure as *mut F).write(f);
            let co = Context::fresh(at.ctx_top as *mut u8, entry::<F, I, Y, R>, yielder.cast());
            yielder.write(Yielder {
                co: UnsafeCell::new(co),
                caller: UnsafeCell::new(Context::running()),
                signal: Cell::new(Signal::Value),
                #[cfg(feature = "std")]
                guard: guards::Node::new(base, stack.guard_size(), top - base),
                _marker: PhantomData,
            });
            // Backtraces inside the body continue into the resumer's frames: `caller` is saved
            // by every resume and is never running while the body runs; it lives (in the
            // Yielder) as long as the coroutine; and resumes nest, so the chain ends.
            (*(*yielder).co.get()).set_unwind_parent((*yielder).caller.get());
            #[cfg(feature = "std")]
            if stack.guard_size() > 0 {
                guards::register(&(*yielder).guard);
            }
        }
        Ok(Coroutine {
            // SAFETY: derived from the stack's address range, which does not include 0.
            yielder: unsafe { NonNull::new_unchecked(yielder) },
            life: Life::NotStarted,
            drop_closure: drop_closure::<F>,
            #[cfg(feature = "std")]
            _valgrind: crate::stack::valgrind::Registration::new(base, top),
            stack: ManuallyDrop::new(stack),
            _marker: PhantomData,
        })
    }

    /// Runs the body until it suspends or ends, handing it `input`: as the closure's second
    /// argument the first time, else as the result of its pending [`Yielder::suspend`].
    ///
    /// # Panics
    ///
    /// If the coroutine has finished; and (with `std`) with the body's own panic, if the body
    /// panics (the coroutine is finished then).
    #[inline(always)]
    pub fn resume(&mut self, input: I) -> CoroutineResult<Y, R> {
        if self.life == Life::Finished {
            resumed_finished();
        }
        self.life = Life::Suspended;
        let input = ManuallyDrop::new(input);
        let y = self.yielder.as_ptr();
        // SAFETY: the Yielder is live (on our stack, which we own); `caller` receives the
        // running state; `co` is fresh or suspended in `suspend` (not finished, checked
        // above). `input` stays in this frame until the body has decoded the word, which it
        // does before anything can switch back here.
        let back = unsafe { arch::switch_word(encode(&input), (*y).caller.get(), (*y).co.get()) };
        // SAFETY: the Yielder is live.
        if unsafe { (*y).signal.get() } != Signal::Finished {
            // SAFETY: the body sent a `Y`, which moves to us.
            return CoroutineResult::Yield(unsafe { decode::<Y>(back) });
        }
        self.life = Life::Finished;
        // SAFETY: when finished, the word is the address of the body's outcome, on its stack,
        // which is still ours; it moves to us.
        match unsafe { ptr::read(back.assume_init() as *const Outcome<R>) } {
            Outcome::Returned(r) => CoroutineResult::Return(r),
            #[cfg(feature = "std")]
            Outcome::Panicked(p) => std::panic::resume_unwind(p),
        }
    }

    /// Whether the body has started (it has been resumed at least once).
    pub fn started(&self) -> bool {
        self.life != Life::NotStarted
    }

    /// Whether the body has ended (returned, or panicked).
    pub fn done(&self) -> bool {
        self.life == Life::Finished
    }

    /// Ends the coroutine and gives its stack back. A coroutine that has not started drops its
    /// closure; a suspended one is unwound first (with `std`; see the [module docs](self)).
    ///
    /// # Panics
    ///
    /// Without `std`, if the coroutine is suspended: its stack cannot be unwound, so it cannot
    /// be given back. With `std`, if the body, being unwound, does not end (it caught the
    /// unwind and suspended again): the stack is leaked then.
    pub fn into_stack(self) -> S {
        let mut this = ManuallyDrop::new(self);
        let (reusable, panic) = this.end();
        if !reusable {
            panic!(
                "grove: a suspended coroutine's stack cannot be taken back without unwinding it"
            );
        }
        // SAFETY: `this` is never used again (and never dropped): the stack moves out once.
        let stack = unsafe { ManuallyDrop::take(&mut this.stack) };
        // SAFETY: likewise, the valgrind registration (if any) is dropped once, here.
        #[cfg(feature = "std")]
        unsafe {
            ptr::drop_in_place(&mut this._valgrind)
        };
        rethrow(panic);
        stack
    }

    /// Brings the coroutine to `Finished` without running it further where it can: drops an
    /// unstarted closure, unwinds a suspended body. Deregisters the guard and tells the stack
    /// how deep it was used. Returns whether the stack may be reused (false: leak it), and a
    /// panic of the body's to pass on once the stack is dealt with.
    fn end(&mut self) -> (bool, Option<Panic>) {
        let (reusable, panic) = match self.life {
            Life::Finished => (true, None),
            Life::NotStarted => {
                self.life = Life::Finished;
                // SAFETY: the closure was written in `with_stack` and never moved out (the
                // body has not started); it is dropped once.
                unsafe { (self.drop_closure)(self.yielder.as_ptr().cast()) };
                (true, None)
            }
            Life::Suspended => self.unwind(),
        };
        #[cfg(feature = "std")]
        // SAFETY: the Yielder is live (our stack); the node was registered in `with_stack`
        // if the stack has a guard, on this thread (a coroutine is !Send).
        unsafe {
            if self.stack.guard_size() > 0 {
                guards::unregister(&(*self.yielder.as_ptr()).guard);
            }
        }
        // How deep the stack was used, as far as cheaply known: where the body last stopped.
        // (Tracking the lowest stop of every resume would cost the hot path; a deep call
        // between stops is caught by the pool's periodic release either way.)
        // SAFETY: the body is not running: its saved context is not in use.
        let last = unsafe { (*(*self.yielder.as_ptr()).co.get()).saved_sp() } as usize;
        self.stack.used_down_to(last);
        (reusable, panic)
    }

    /// Unwinds a suspended body. Returns whether it ended, and a panic other than our own
    /// that happened during the unwind.
    #[cfg(feature = "std")]
    fn unwind(&mut self) -> (bool, Option<Panic>) {
        let y = self.yielder.as_ptr();
        // SAFETY: as in `resume`; the signal tells the body to unwind, and the word carries
        // nothing.
        let back = unsafe {
            (*y).signal.set(Signal::Unwind);
            arch::switch_word(Word::uninit(), (*y).caller.get(), (*y).co.get())
        };
        // SAFETY: the Yielder is live.
        if unsafe { (*y).signal.get() } != Signal::Finished {
            // It caught the unwind and suspended again. Drop what it handed over; its stack
            // still holds live frames, so it is never reused.
            // SAFETY: as in `resume`: a `Y` that moves to us.
            drop(unsafe { decode::<Y>(back) });
            return (false, None);
        }
        self.life = Life::Finished;
        // SAFETY: as in `resume`.
        match unsafe { ptr::read(back.assume_init() as *const Outcome<R>) } {
            Outcome::Returned(r) => {
                drop(r);
                (true, None)
            }
            // Our own payload is expected; another panic during the unwind is passed on
            // (unless we are already unwinding).
            Outcome::Panicked(p) if p.is::<ForcedUnwind>() || std::thread::panicking() => {
                (true, None)
            }
            Outcome::Panicked(p) => (true, Some(p)),
        }
    }

    /// Without std a suspended body cannot be unwound.
    #[cfg(not(feature = "std"))]
    fn unwind(&mut self) -> (bool, Option<Panic>) {
        (false, None)
    }
}

/// A panic payload to pass on (none can exist without std).
#[cfg(feature = "std")]
type Panic = Box<dyn core::any::Any + Send>;
#[cfg(not(feature = "std"))]
type Panic = core::convert::Infallible;

/// Passes on a panic that happened while a body was unwound.
fn rethrow(p: Option<Panic>) {
    #[cfg(feature = "std")]
    if let Some(p) = p {
        std::panic::resume_unwind(p);
    }
    #[cfg(not(feature = "std"))]
    let _ = p;
}

impl<I, Y, R, S: Stack> Drop for Coroutine<I, Y, R, S> {
    fn drop(&mut self) {
        let (reusable, panic) = self.end();
        if reusable {
            // SAFETY: the stack is dropped once, here; nothing runs on it any more.
            unsafe { ManuallyDrop::drop(&mut self.stack) };
        }
        // Else the stack is leaked: frames on it are still live.
        rethrow(panic);
    }
}

impl<I, Y, R, S: Stack> fmt::Debug for Coroutine<I, Y, R, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coroutine")
            .field("life", &self.life)
            .field("stack_size", &self.stack.size())
            .finish()
    }
}

#[cold]
#[inline(never)]
fn resumed_finished() -> ! {
    panic!("grove: resume of a coroutine that has finished")
}

/// Drops the closure `F` that [`layout`] put below the Yielder at `yielder`.
///
/// # Safety
///
/// `yielder` must be the Yielder of a coroutine made with this `F`, whose closure is live
/// (not started) and not used afterwards.
unsafe fn drop_closure<F>(yielder: *mut u8) {
    // SAFETY: as the caller promises; the closure is where `with_stack` wrote it.
    unsafe { ptr::drop_in_place(closure_at::<F>(yielder as usize) as *mut F) }
}

/// Where every coroutine begins, called by the trampoline on the coroutine's own stack.
///
/// # Safety
///
/// Called only by `grove_trampoline` for a context made in [`Coroutine::with_stack`] with the
/// same type parameters: `data` is the Yielder, the closure lies where [`layout`] puts it, and
/// `arg` is the word of the first input.
unsafe extern "C" fn entry<F, I, Y, R>(arg: usize, data: *mut u8) -> !
where
    F: FnOnce(&Yielder<I, Y>, I) -> R,
{
    let y = data as *const Yielder<I, Y>;
    // SAFETY: `data` is the Yielder, live while the coroutine exists.
    let yr = unsafe { &*y };
    // The first message is an input: a coroutine that has not started is never unwound.
    debug_assert_eq!(
        yr.signal.get(),
        Signal::Value,
        "a fresh coroutine starts with a value"
    );
    // SAFETY: the first message is the word of an `I` we now own (the register arrives as an
    // integer; its bytes are what `resume` put there); the closure lies just below the
    // Yielder (same computation as `with_stack`) and is moved out once: `resume` marked the
    // coroutine started, so nobody else drops it.
    let (input, f) = unsafe {
        (
            decode::<I>(Word::new(arg)),
            ptr::read(closure_at::<F>(y as usize) as *const F),
        )
    };
    #[cfg(feature = "std")]
    let outcome = match std::panic::catch_unwind(core::panic::AssertUnwindSafe(|| f(yr, input))) {
        Ok(r) => Outcome::Returned(r),
        Err(p) => Outcome::Panicked(p),
    };
    #[cfg(not(feature = "std"))]
    let outcome = Outcome::Returned(f(yr, input));
    let outcome = ManuallyDrop::new(outcome);
    yr.signal.set(Signal::Finished);
    let word = Word::new(&*outcome as *const Outcome<R> as usize);
    // SAFETY: as in `suspend`; the outcome stays on this stack, which the resumer owns and
    // does not release before it has read it. Nothing ever resumes us again.
    unsafe { arch::switch_return_word(word, yr.co.get(), yr.caller.get()) };
    unreachable!("grove: a finished coroutine was resumed")
}

/// The overflow handler's view of live coroutines: a per-thread list of their guard regions.
#[cfg(feature = "std")]
pub(crate) mod guards {
    use core::cell::Cell;
    use core::ptr;

    /// One coroutine's guard, in its Yielder (so at a fixed address while it lives).
    pub(crate) struct Node {
        /// The guard region: `lo..hi`.
        lo: usize,
        hi: usize,
        /// Usable bytes of the stack.
        size: usize,
        next: Cell<*const Node>,
        prev: Cell<*const Node>,
    }

    impl Node {
        pub(crate) fn new(base: usize, guard: usize, size: usize) -> Node {
            Node {
                lo: base.saturating_sub(guard),
                hi: base,
                size,
                next: Cell::new(ptr::null()),
                prev: Cell::new(ptr::null()),
            }
        }
    }

    std::thread_local! {
        /// The most recently registered live node of this thread.
        static HEAD: Cell<*const Node> = const { Cell::new(ptr::null()) };
        /// Whether this thread has made sure of the overflow handler and its altstack.
        static HANDLER_READY: Cell<bool> = const { Cell::new(false) };
    }

    /// Adds `n` at the head. Each store leaves a list the handler can walk forward: `n` is
    /// complete before the head points to it.
    ///
    /// # Safety
    ///
    /// `n` must stay at its address, alive, until [`unregister`] on this thread; at most once.
    pub(crate) unsafe fn register(n: &Node) {
        let _ = HEAD.try_with(|h| {
            let old = h.get();
            n.next.set(old);
            n.prev.set(ptr::null());
            if !old.is_null() {
                // SAFETY: nodes in the list are alive (the caller's promise for each).
                unsafe { (*old).prev.set(n) };
            }
            h.set(n);
        });
        if !HANDLER_READY.with(Cell::get) {
            crate::stack::overflow::install();
            crate::stack::overflow::ensure_altstack();
            HANDLER_READY.with(|r| r.set(true));
        }
    }

    /// Removes `n`. The forward links change with one store (the predecessor's `next`, or
    /// the head), so the handler never meets a dead node.
    ///
    /// # Safety
    ///
    /// `n` must have been registered on this thread (or the thread's list be gone).
    pub(crate) unsafe fn unregister(n: &Node) {
        let _ = HEAD.try_with(|h| {
            let (prev, next) = (n.prev.get(), n.next.get());
            // SAFETY: neighbours in the list are alive.
            unsafe {
                if prev.is_null() {
                    if ptr::eq(h.get(), n) {
                        h.set(next);
                    }
                } else {
                    (*prev).next.set(next);
                }
                if !next.is_null() {
                    (*next).prev.set(prev);
                }
            }
        });
    }

    /// If `addr` is in the guard of a live coroutine of this thread, that stack's usable
    /// size in KiB. Async-signal-safe: reads only.
    pub(crate) fn guard_hit(addr: usize) -> Option<usize> {
        let mut n = HEAD.try_with(Cell::get).ok()?;
        // SAFETY: every node in the list is alive (see `register`/`unregister`).
        while let Some(node) = unsafe { n.as_ref() } {
            if addr >= node.lo && addr < node.hi {
                return Some(node.size / 1024);
            }
            n = node.next.get();
        }
        None
    }
}
