//! Streams and futures between stores.
//!
//! A `stream` or `future` end belongs to one store, so when a call passes
//! one to a component in another store (or another process), the host
//! moves it: in the store it leaves, the host takes the readable end and
//! reads it into a channel ([`take_out`]); in the store it enters, the host
//! makes a new readable end whose items come from that channel
//! ([`put_in`]). Between the two there is an [`End`]: for a stream, a
//! bounded channel of frames, which is what gives back-pressure and bounded
//! memory (at most [`WINDOW`] frames of up to [`FRAME`] bytes wait in it);
//! for a future, a one-shot channel of its value. The RPC layer carries the
//! same frames over gRPC, so an end crosses a process the same way.
//!
//! A frame is a run of items in the wire format of `codec` (for
//! `stream<u8>`, the bytes themselves, copied straight from one guest's
//! memory and into the other's). wasmtime moves a stream's items only as
//! Rust types known when weft is compiled, so the items a stream or future
//! may carry are the [`Payload`]s: scalars, `char` and `string`. Any other
//! payload is refused when the app is linked, with the function named.

use crate::codec::typed::{Wire, WireList, decode_run, encode_run};
use bytes::Bytes;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::PollSender;
use wasmtime::component::types::Type;
use wasmtime::component::{
    ComponentType, Destination, FutureConsumer, FutureReader, Lift, Lower, Source, StreamConsumer,
    StreamProducer, StreamReader, StreamResult, Val, VecBuffer,
};
use wasmtime::{AsContextMut, StoreContextMut};

/// The most bytes of items one frame carries.
pub const FRAME: usize = 64 * 1024;

/// How many frames of one stream may wait between its two ends.
pub const WINDOW: usize = 4;

/// What a stream's items or a future's value may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Payload {
    /// `bool`
    Bool,
    /// `u8`: a byte stream.
    U8,
    /// `s8`
    S8,
    /// `u16`
    U16,
    /// `s16`
    S16,
    /// `u32`
    U32,
    /// `s32`
    S32,
    /// `u64`
    U64,
    /// `s64`
    S64,
    /// `f32`
    F32,
    /// `f64`
    F64,
    /// `char`
    Char,
    /// `string`
    String,
}

impl Payload {
    /// The payload of a stream or future whose items are `ty`, if weft
    /// can carry it.
    pub(crate) fn of(ty: &Type) -> Option<Payload> {
        Some(match ty {
            Type::Bool => Payload::Bool,
            Type::U8 => Payload::U8,
            Type::S8 => Payload::S8,
            Type::U16 => Payload::U16,
            Type::S16 => Payload::S16,
            Type::U32 => Payload::U32,
            Type::S32 => Payload::S32,
            Type::U64 => Payload::U64,
            Type::S64 => Payload::S64,
            Type::Float32 => Payload::F32,
            Type::Float64 => Payload::F64,
            Type::Char => Payload::Char,
            Type::String => Payload::String,
            _ => return None,
        })
    }
}

/// Runs `$body` with `$t` the Rust type of payload `$payload`.
macro_rules! with_payload {
    ($payload:expr, $t:ident => $body:expr) => {
        match $payload {
            Payload::Bool => {
                type $t = bool;
                $body
            }
            Payload::U8 => {
                type $t = u8;
                $body
            }
            Payload::S8 => {
                type $t = i8;
                $body
            }
            Payload::U16 => {
                type $t = u16;
                $body
            }
            Payload::S16 => {
                type $t = i16;
                $body
            }
            Payload::U32 => {
                type $t = u32;
                $body
            }
            Payload::S32 => {
                type $t = i32;
                $body
            }
            Payload::U64 => {
                type $t = u64;
                $body
            }
            Payload::S64 => {
                type $t = i64;
                $body
            }
            Payload::F32 => {
                type $t = f32;
                $body
            }
            Payload::F64 => {
                type $t = f64;
                $body
            }
            Payload::Char => {
                type $t = char;
                $body
            }
            Payload::String => {
                type $t = String;
                $body
            }
        }
    };
}

/// A stream or future on its way from one store to another.
pub enum End {
    /// A stream: its items in frames, until the writer closes it. Dropping
    /// the receiver tells the writer that nobody reads any more.
    Stream(mpsc::Receiver<Bytes>),
    /// A future: its value, once written.
    Future(oneshot::Receiver<Bytes>),
}

/// Where the ends of a store's calls keep a count, so that whoever drives
/// the store knows when every end moved in or out of it is finished.
#[derive(Clone)]
pub(crate) struct Tracker {
    /// Never sent on: only its being dropped counts.
    _alive: mpsc::UnboundedSender<()>,
}

impl Tracker {
    /// A tracker, and what resolves once it and every clone are gone.
    pub(crate) fn new() -> (Tracker, mpsc::UnboundedReceiver<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Tracker { _alive: tx }, rx)
    }
}

/// Where the streams and futures are in a list of values of `types`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ends {
    /// The values' types.
    types: Vec<Type>,
    /// Whether any of them holds a stream or a future.
    any: bool,
}

impl Ends {
    /// The ends in values of `types`; an error names a payload that weft
    /// cannot carry, or an error context.
    pub(crate) fn of(types: Vec<Type>) -> Result<Ends, String> {
        let mut any = false;
        for ty in &types {
            check(ty, &mut any)?;
        }
        Ok(Ends { types, any })
    }

    /// Whether the values hold any stream or future.
    pub(crate) fn any(&self) -> bool {
        self.any
    }

    /// How many values there are.
    pub(crate) fn len(&self) -> usize {
        self.types.len()
    }
}

fn check(ty: &Type, any: &mut bool) -> Result<(), String> {
    let payload = |inner: Option<Type>, what: &str| match inner {
        None => Err(format!("a {what} without a payload type")),
        Some(t) => Payload::of(&t).map(|_| ()).ok_or_else(|| {
            format!(
                "a {what}<{}>; weft carries streams and futures of scalars, char and \
                 string only",
                crate::world::type_text(&t)
            )
        }),
    };
    match ty {
        Type::Stream(s) => {
            *any = true;
            payload(s.ty(), "stream")
        }
        Type::Future(f) => {
            *any = true;
            payload(f.ty(), "future")
        }
        Type::ErrorContext => Err("an error-context, which cannot pass between components".into()),
        Type::List(l) => check(&l.ty(), any),
        Type::FixedLengthList(l) => check(&l.ty(), any),
        Type::Option(o) => check(&o.ty(), any),
        Type::Result(r) => {
            for t in [r.ok(), r.err()].into_iter().flatten() {
                check(&t, any)?;
            }
            Ok(())
        }
        Type::Tuple(t) => t.types().try_for_each(|t| check(&t, any)),
        Type::Record(r) => r.fields().try_for_each(|f| check(&f.ty, any)),
        Type::Variant(v) => v
            .cases()
            .filter_map(|c| c.ty)
            .try_for_each(|t| check(&t, any)),
        Type::Map(m) => {
            check(&m.key(), any)?;
            check(&m.value(), any)
        }
        _ => Ok(()),
    }
}

/// Calls `f` on every stream or future in `value` of type `ty`, in order.
fn each_end(
    ty: &Type,
    value: &mut Val,
    f: &mut impl FnMut(&Type, &mut Val) -> wasmtime::Result<()>,
) -> wasmtime::Result<()> {
    match (ty, value) {
        (Type::Stream(_) | Type::Future(_), value) => f(ty, value),
        (Type::List(l), Val::List(items)) => {
            items.iter_mut().try_for_each(|v| each_end(&l.ty(), v, f))
        }
        (Type::FixedLengthList(l), Val::FixedLengthList(items)) => {
            items.iter_mut().try_for_each(|v| each_end(&l.ty(), v, f))
        }
        (Type::Option(o), Val::Option(Some(v))) => each_end(&o.ty(), v, f),
        (Type::Result(r), Val::Result(result)) => match result {
            Ok(Some(v)) => each_end(&r.ok().expect("a payload"), v, f),
            Err(Some(v)) => each_end(&r.err().expect("a payload"), v, f),
            _ => Ok(()),
        },
        (Type::Tuple(t), Val::Tuple(items)) => t
            .types()
            .zip(items.iter_mut())
            .try_for_each(|(t, v)| each_end(&t, v, f)),
        (Type::Record(r), Val::Record(fields)) => r
            .fields()
            .zip(fields.iter_mut())
            .try_for_each(|(t, (_, v))| each_end(&t.ty, v, f)),
        (Type::Variant(v), Val::Variant(name, Some(payload))) => {
            match v
                .cases()
                .find(|c| c.name == name.as_str())
                .and_then(|c| c.ty)
            {
                Some(t) => each_end(&t, payload, f),
                None => Ok(()),
            }
        }
        (Type::Map(m), Val::Map(pairs)) => pairs.iter_mut().try_for_each(|(k, v)| {
            each_end(&m.key(), k, f)?;
            each_end(&m.value(), v, f)
        }),
        _ => Ok(()),
    }
}

/// Takes every stream and future out of `values` (which belong to
/// `store`): the host reads each into the [`End`] returned for it, in
/// order. The values keep stale handles where the ends were.
pub(crate) fn take_out<S: AsContextMut>(
    mut store: S,
    ends: &Ends,
    values: &mut [Val],
    tracker: Option<&Tracker>,
) -> wasmtime::Result<Vec<End>>
where
    S::Data: 'static,
{
    let mut out = Vec::new();
    if !ends.any {
        return Ok(out);
    }
    for (ty, value) in ends.types.iter().zip(values.iter_mut()) {
        each_end(ty, value, &mut |ty, value| {
            out.push(take_one(&mut store, ty, value, tracker)?);
            Ok(())
        })?;
    }
    Ok(out)
}

fn take_one<S: AsContextMut>(
    store: &mut S,
    ty: &Type,
    value: &Val,
    tracker: Option<&Tracker>,
) -> wasmtime::Result<End>
where
    S::Data: 'static,
{
    match (ty, value) {
        (Type::Stream(s), Val::Stream(any)) => {
            let payload = s
                .ty()
                .as_ref()
                .and_then(Payload::of)
                .expect("checked at link time");
            let (tx, rx) = mpsc::channel(WINDOW);
            with_payload!(payload, T => {
                let reader = any.clone().try_into_stream_reader::<T>()?;
                reader.pipe(store.as_context_mut(), Sink::<T>::new(tx, tracker))?;
            });
            Ok(End::Stream(rx))
        }
        (Type::Future(f), Val::Future(any)) => {
            let payload = f
                .ty()
                .as_ref()
                .and_then(Payload::of)
                .expect("checked at link time");
            let (tx, rx) = oneshot::channel();
            with_payload!(payload, T => {
                let reader = any.clone().try_into_future_reader::<T>()?;
                reader.pipe(store.as_context_mut(), ValueSink::<T>::new(tx, tracker))?;
            });
            Ok(End::Future(rx))
        }
        _ => Err(wasmtime::format_err!(
            "a value does not match its type (expected {ty:?}, found {value:?})"
        )),
    }
}

/// Puts `ends` (from [`take_out`] in another store) into `values`, which
/// are to enter `store`: each stale handle is replaced, in order, by a new
/// readable end in `store` whose items come from its [`End`].
pub(crate) fn put_in<S: AsContextMut>(
    mut store: S,
    ends: &Ends,
    values: &mut [Val],
    taken: Vec<End>,
    tracker: Option<&Tracker>,
) -> wasmtime::Result<()>
where
    S::Data: 'static,
{
    if !ends.any {
        return Ok(());
    }
    let mut taken = taken.into_iter();
    for (ty, value) in ends.types.iter().zip(values.iter_mut()) {
        each_end(ty, value, &mut |ty, value| {
            let end = taken.next().ok_or_else(|| {
                wasmtime::format_err!("a call carried fewer streams and futures than its type has")
            })?;
            *value = put_one(&mut store, ty, end, tracker)?;
            Ok(())
        })?;
    }
    Ok(())
}

fn put_one<S: AsContextMut>(
    store: &mut S,
    ty: &Type,
    end: End,
    tracker: Option<&Tracker>,
) -> wasmtime::Result<Val>
where
    S::Data: 'static,
{
    let tracker = tracker.cloned();
    match (ty, end) {
        (Type::Stream(s), End::Stream(frames)) => {
            let payload = s
                .ty()
                .as_ref()
                .and_then(Payload::of)
                .expect("checked at link time");
            with_payload!(payload, T => {
                let source = Feed::<T> { frames, left: None, _tracker: tracker, _items: PhantomData };
                let reader = StreamReader::<T>::new(store.as_context_mut(), source)?;
                Ok(Val::Stream(reader.try_into_stream_any(store.as_context_mut())?))
            })
        }
        (Type::Future(f), End::Future(value)) => {
            let payload = f
                .ty()
                .as_ref()
                .and_then(Payload::of)
                .expect("checked at link time");
            with_payload!(payload, T => {
                let produce = async move {
                    let _tracker = tracker;
                    let bytes = value.await.map_err(|_| {
                        wasmtime::format_err!(
                            "the component that was to write this future went away before it did"
                        )
                    })?;
                    let (value,) = <(T,)>::decode(&bytes)
                        .map_err(|e| wasmtime::format_err!("a future's value is not valid: {e}"))?;
                    Ok::<T, wasmtime::Error>(value)
                };
                let reader = FutureReader::<T>::new(store.as_context_mut(), produce)?;
                Ok(Val::Future(reader.try_into_future_any(store.as_context_mut())?))
            })
        }
        (ty, _) => Err(wasmtime::format_err!(
            "a call carried a stream where its type has a future, or the other way round ({ty:?})"
        )),
    }
}

/// An item of a stream or the value of a future, as weft moves it.
pub(crate) trait Item: ComponentType + Lift + Lower + Wire + Send + Sync + 'static {
    /// Reads up to a frame of items from `source` into wire bytes; empty
    /// when the writer offered none.
    fn read_frame<D: 'static>(
        store: StoreContextMut<'_, D>,
        source: Source<'_, Self>,
    ) -> wasmtime::Result<Bytes>;

    /// Delivers the items of `frame` to `destination`; what did not fit,
    /// if anything, comes back.
    fn write_frame<D: 'static>(
        store: StoreContextMut<'_, D>,
        destination: Destination<'_, Self, VecBuffer<Self>>,
        frame: Bytes,
    ) -> wasmtime::Result<Option<Bytes>>;
}

impl Item for u8 {
    fn read_frame<D: 'static>(
        store: StoreContextMut<'_, D>,
        source: Source<'_, u8>,
    ) -> wasmtime::Result<Bytes> {
        let mut direct = source.as_direct(store);
        let available = direct.remaining();
        let n = available.len().min(FRAME);
        let frame = Bytes::copy_from_slice(&available[..n]);
        direct.mark_read(n);
        Ok(frame)
    }

    fn write_frame<D: 'static>(
        store: StoreContextMut<'_, D>,
        destination: Destination<'_, u8, VecBuffer<u8>>,
        frame: Bytes,
    ) -> wasmtime::Result<Option<Bytes>> {
        let mut direct = destination.as_direct(store, frame.len());
        let room = direct.remaining();
        let n = room.len().min(frame.len());
        room[..n].copy_from_slice(&frame[..n]);
        direct.mark_written(n);
        Ok((n < frame.len()).then(|| frame.slice(n..)))
    }
}

macro_rules! items {
    ($($t:ty),*) => {$(
        impl Item for $t {
            fn read_frame<D: 'static>(
                mut store: StoreContextMut<'_, D>,
                mut source: Source<'_, $t>,
            ) -> wasmtime::Result<Bytes> {
                let count = source.remaining(store.as_context_mut()).min(FRAME / 8).max(1);
                let mut items = Vec::with_capacity(count);
                source.read(store, &mut items)?;
                Ok(encode_run(&items).into())
            }

            fn write_frame<D: 'static>(
                _store: StoreContextMut<'_, D>,
                mut destination: Destination<'_, $t, VecBuffer<$t>>,
                frame: Bytes,
            ) -> wasmtime::Result<Option<Bytes>> {
                let items = decode_run::<$t>(&frame)
                    .map_err(|e| wasmtime::format_err!("a stream's items are not valid: {e}"))?;
                // What the reader cannot take now, wasmtime keeps for its
                // next reads.
                destination.set_buffer(items.into());
                Ok(None)
            }
        }
    )*};
}

items!(
    bool, i8, u16, i16, u32, i32, u64, i64, f32, f64, char, String
);

/// Reads a stream in one store into a channel of frames.
struct Sink<T> {
    frames: PollSender<Bytes>,
    tracker: Option<Tracker>,
    _items: PhantomData<fn(T)>,
}

impl<T> Sink<T> {
    fn new(frames: mpsc::Sender<Bytes>, tracker: Option<&Tracker>) -> Sink<T> {
        Sink {
            frames: PollSender::new(frames),
            tracker: tracker.cloned(),
            _items: PhantomData,
        }
    }
}

impl<D: 'static, T: Item> StreamConsumer<D> for Sink<T> {
    type Item = T;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        source: Source<'_, T>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        // Room in the channel first: that is the back-pressure.
        match self.frames.poll_reserve(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => {
                self.tracker = None;
                return Poll::Ready(Ok(StreamResult::Dropped));
            }
            Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
            Poll::Pending => return Poll::Pending,
        }
        if source.remaining(store.as_context_mut()) == 0 {
            // A zero-length write asks whether we are ready: we are.
            self.frames.abort_send();
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let frame = T::read_frame(store, source)?;
        if self.frames.send_item(frame).is_err() {
            self.tracker = None;
            return Poll::Ready(Ok(StreamResult::Dropped));
        }
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

/// Reads a future in one store into a one-shot channel.
struct ValueSink<T> {
    value: Option<oneshot::Sender<Bytes>>,
    _tracker: Option<Tracker>,
    _item: PhantomData<fn(T)>,
}

impl<T> ValueSink<T> {
    fn new(value: oneshot::Sender<Bytes>, tracker: Option<&Tracker>) -> ValueSink<T> {
        ValueSink {
            value: Some(value),
            _tracker: tracker.cloned(),
            _item: PhantomData,
        }
    }
}

impl<D: 'static, T: Item> FutureConsumer<D> for ValueSink<T> {
    type Item = T;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        store: StoreContextMut<D>,
        mut source: Source<'_, T>,
        _finish: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut value = None;
        source.read(store, &mut value)?;
        if let (Some(value), Some(tx)) = (value, self.value.take()) {
            let _ = tx.send(Bytes::from((value,).encode()));
        }
        self._tracker = None;
        Poll::Ready(Ok(()))
    }
}

/// Feeds a stream in one store from a channel of frames.
struct Feed<T> {
    frames: mpsc::Receiver<Bytes>,
    /// The part of a frame that the reader had no room for.
    left: Option<Bytes>,
    _tracker: Option<Tracker>,
    _items: PhantomData<fn() -> T>,
}

impl<D: 'static, T: Item> StreamProducer<D> for Feed<T> {
    type Item = T;
    type Buffer = VecBuffer<T>;

    fn poll_produce<'a>(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut store: StoreContextMut<'a, D>,
        destination: Destination<'a, T, VecBuffer<T>>,
        finish: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        if destination.remaining(store.as_context_mut()) == Some(0) {
            // A zero-length read asks whether items are ready; say yes
            // rather than wait, as the component model allows.
            return Poll::Ready(Ok(StreamResult::Completed));
        }
        let frame = match self.left.take() {
            Some(frame) => frame,
            None => match self.frames.poll_recv(cx) {
                Poll::Ready(Some(frame)) => frame,
                Poll::Ready(None) => {
                    self._tracker = None;
                    return Poll::Ready(Ok(StreamResult::Dropped));
                }
                Poll::Pending if finish => return Poll::Ready(Ok(StreamResult::Cancelled)),
                Poll::Pending => return Poll::Pending,
            },
        };
        self.left = T::write_frame(store, destination, frame)?;
        Poll::Ready(Ok(StreamResult::Completed))
    }
}
