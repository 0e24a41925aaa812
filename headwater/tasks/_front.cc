// The connector service's gRPC front end: libgrpc++ (Debian's 1.51, found with pkg-config)
// accepts every call, reads its request messages and sends the answers; Python
// (headwater/tasks/front.py) decides them on its event loop. The Python API is in _front.pyi.
//
// Threads. One completion-queue (CQ) thread runs every gRPC completion. It never runs Python
// and never takes the GIL: it hands events over through a mutex-protected deque and an eventfd,
// written when the deque goes from empty to non-empty; Server.events() drains both. Python
// starts writes and finishes from its own thread (grpc++ allows starting async operations
// from any thread), holding the GIL: that is safe because nobody waits for the GIL while
// holding a lock of this file.
//
// A call's life: accepted (RequestCall, with AsyncNotifyWhenDone registered first) -> Read
// until the client half-closes -> the "call" event (for a method named in `streaming`, whose
// client may wait for an answer before it half-closes: the "call" event at once, then a
// ("message", call, bytes) event per request and ("message", call, None) at its end) -> Python queues writes (one Write in flight
// at a time) and a finish (a unary answer's one message goes with it: WriteAndFinish) ->
// Finish once every write is sent -> the done tag -> the "done" event, for a cancelled call
// only: it comes once for each call delivered as "call" that the client cancelled, that passed
// its deadline or failed (with a new Call object if Python let go of the first one); a call
// that finished as Python said is over there already. A call cancelled, past its deadline or abandoned by its
// client while its requests were still being read is not delivered at all, neither "call" nor
// "done", except a request-streaming one whose request is over max_message_bytes: it was
// delivered, so its ("done", call, True) comes (see refuse_too_large).
//
// Backpressure. write() says when more than kQueuedBytes wait to be handed to gRPC (which
// itself holds what HTTP/2 flow control lets it); Python then calls notify_drained() and waits
// for the ("drained", call) event, sent once at most kDrainedBytes are left. Bytes, not
// messages: a log of 4 MiB messages is held to one of them.
//
// Memory. A CallState is shared by its Python Call object and, while any of its operations
// is in flight, by itself (`self`): it is freed when both are gone. Each CallState keeps the
// Front alive, so a Call may outlive its Server; the Server's dealloc shuts everything down.
//
// Locks, always taken in this order: CallState::mu, then Front::cq_mu (shared) or
// Front::events_mu. Front::life_mu (start and shutdown) is taken with no other lock held.
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

constexpr int kAccepts = 16;  // RequestCalls kept outstanding (each accept re-arms one)
const char* const kDropped = "the server dropped the call";
const size_t kQueuedBytes = 1 << 20;  // a streamed answer's writes waiting past this: write() says so
const size_t kDrainedBytes = 1 << 18;  // ... and a waiting Python goes on once this much is left

struct CallState;

enum class Op { ACCEPT, READ, WRITE, FINISH, DONE };

struct Tag {  // what the CQ returns: which call, and which of its operations completed
  CallState* call;
  Op op;
};

struct Event {
  enum Kind { CALL, DONE, MESSAGE, DRAINED } kind;
  std::shared_ptr<CallState> call;
  bool cancelled;
  std::unique_ptr<grpc::ByteBuffer> message;  // MESSAGE: one request; null: the stream ended
};

struct Front : std::enable_shared_from_this<Front> {
  Front(std::string address_, int max_message_bytes_, int efd_,
        std::set<std::string> streaming_)
      : address(std::move(address_)),
        max_message_bytes(max_message_bytes_),
        efd(efd_),
        streaming(std::move(streaming_)) {}
  ~Front() {
    shutdown(0);
    close(efd);
  }

  const std::string address;
  const int max_message_bytes;
  const int efd;  // the eventfd: readable while `events` is not empty
  // Methods whose requests stream: delivered at once, then each message as it comes.
  const std::set<std::string> streaming;

  // Start and shutdown. Declared so that the server is destroyed before the CQ, and the CQ
  // before the service.
  std::mutex life_mu;
  bool started = false, stopped = false;
  std::unique_ptr<grpc::AsyncGenericService> service;
  std::unique_ptr<grpc::ServerCompletionQueue> cq;
  std::unique_ptr<grpc::Server> server;
  std::thread thread;

  // Every operation is started under a shared lock of cq_mu, and only while cq_open:
  // starting one after cq->Shutdown() would abort the process.
  std::shared_mutex cq_mu;
  bool cq_open = false;
  bool accepting = false;

  std::mutex events_mu;
  std::deque<Event> events;

  int start();  // the port; 0 if it cannot listen; -1 if started already, -2 if shut down
  void shutdown(double grace);
  void accept();
  void push(Event event);
  void run();
};

struct CallState : std::enable_shared_from_this<CallState> {
  explicit CallState(std::shared_ptr<Front> front_) : front(std::move(front_)) {}

  const std::shared_ptr<Front> front;
  grpc::GenericServerContext ctx;
  grpc::GenericServerAsyncReaderWriter stream{&ctx};
  Tag accept_tag{this, Op::ACCEPT}, read_tag{this, Op::READ}, write_tag{this, Op::WRITE},
      finish_tag{this, Op::FINISH}, done_tag{this, Op::DONE};

  // Filled on the CQ thread before the "call" event, then read only by Server.events().
  gpr_timespec deadline{};  // monotonic clock, or infinite
  grpc::ByteBuffer reading;
  std::vector<grpc::ByteBuffer> requests;

  PyObject* py = nullptr;  // the Python Call object, if any (borrowed; only with the GIL)

  std::mutex mu;  // guards everything below
  int pending = 0;  // operations in flight, the done tag included once accepted
  std::shared_ptr<CallState> self;  // set while pending > 0
  bool delivered = false;  // the "call" event was queued
  bool streamed = false;  // a streaming method: requests go to Python one by one
  bool over = false;  // the done tag came, or a write failed: nothing more can be sent
  bool finishing = false;  // finish() was called (or the Python Call dropped)
  bool finish_started = false;
  bool last_message = false;  // the finish carries the last message (one WriteAndFinish)
  bool writing = false;  // a Write is in flight
  bool want_drained = false;  // Python waits for the queue of writes to run low
  std::deque<grpc::ByteBuffer> writes;
  size_t queued_bytes = 0;  // in `writes`
  grpc::ByteBuffer outgoing;
  grpc::Status status;
  std::vector<std::pair<std::string, std::string>> trailing;

  bool start(Op op);
  void send_next();
  void complete(Op op, bool ok);
  bool write(grpc::ByteBuffer message);  // true when the writes waiting are past kQueuedBytes
  void queue(grpc::ByteBuffer* message);
  void drop_writes();
  void notify_drained();
  void drained_if_low();  // mu is held
  void refuse_too_large();  // mu is held
  void finish(grpc::Status final_status, std::vector<std::pair<std::string, std::string>> md,
              grpc::ByteBuffer* last = nullptr);
  void drop();
};

// --- CallState --------------------------------------------------------------------------------

// Starts a Read, Write or Finish; mu is held. False when the CQ is shut down (nothing started).
bool CallState::start(Op op) {
  std::shared_lock<std::shared_mutex> open(front->cq_mu);
  if (!front->cq_open) return false;
  if (pending++ == 0) self = shared_from_this();
  switch (op) {
    case Op::READ:
      stream.Read(&reading, &read_tag);
      break;
    case Op::WRITE:
      stream.Write(outgoing, &write_tag);
      break;
    case Op::FINISH:
      for (auto& [key, value] : trailing) ctx.AddTrailingMetadata(key, value);
      if (last_message)  // a unary answer: its message and status in one operation
        stream.WriteAndFinish(outgoing, grpc::WriteOptions(), status, &finish_tag);
      else
        stream.Finish(status, &finish_tag);
      break;
    case Op::ACCEPT:
    case Op::DONE:
      break;
  }
  return true;
}

// Starts the next queued write or, once all are sent, the finish; mu is held.
void CallState::send_next() {
  if (writing || finish_started) return;
  if (over) {
    drop_writes();
    return;
  }
  if (!writes.empty()) {
    outgoing.Swap(&writes.front());
    writes.pop_front();
    queued_bytes -= outgoing.Length();
    writing = start(Op::WRITE);
    if (!writing) {
      over = true;
      drop_writes();
    }
  } else if (finishing) {
    finish_started = true;
    start(Op::FINISH);
  }
}

// On the CQ thread: an operation of this call completed.
void CallState::complete(Op op, bool ok) {
  std::shared_ptr<CallState> release;  // dropped once mu is unlocked: it may free *this
  bool accepted = false;
  {
    std::lock_guard<std::mutex> lock(mu);
    switch (op) {
      case Op::ACCEPT:
        if (ok) {  // (not ok: the server is shutting down, and this call never started)
          accepted = true;
          pending++;  // the done tag is now on its way
          deadline = gpr_convert_clock_type(ctx.raw_deadline(), GPR_CLOCK_MONOTONIC);
          if (front->streaming.count(ctx.method())) {
            // Its client may wait for an answer before it half-closes (propeller's sync
            // plugin does): Python gets the call now and each message as it is read.
            streamed = delivered = true;
            front->push({Event::CALL, shared_from_this(), false, nullptr});
          }
          start(Op::READ);
        }
        break;
      case Op::READ:
        if (ok && reading.Length() > static_cast<size_t>(front->max_message_bytes)) {
          refuse_too_large();
        } else if (streamed) {
          std::unique_ptr<grpc::ByteBuffer> message;
          if (ok) {
            message = std::make_unique<grpc::ByteBuffer>();
            message->Swap(&reading);
            start(Op::READ);
          }  // (else the client half-closed, or the call failed: "done" follows then)
          front->push({Event::MESSAGE, shared_from_this(), false, std::move(message)});
        } else if (ok) {
          requests.emplace_back();
          requests.back().Swap(&reading);
          start(Op::READ);  // (if the CQ is shut down the call is never delivered)
        } else if (!over && !grpc_call_failed_before_recv_message(ctx.c_call())) {
          // The client half-closed. (Otherwise the call failed while its requests were
          // being read: cancelled, or past its deadline. It is never delivered, and its
          // done tag is not passed on either.)
          delivered = true;
          front->push({Event::CALL, shared_from_this(), false, nullptr});
        }
        break;
      case Op::WRITE:
        writing = false;
        outgoing.Clear();
        if (!ok) over = true;
        send_next();
        drained_if_low();
        break;
      case Op::FINISH:
        break;
      case Op::DONE:
        over = true;
        drop_writes();
        drained_if_low();
        // Only a cancelled call is news to Python (its task must stop); a finished one is
        // already over there, and an event for it would wake the loop once more per call.
        if (delivered && ctx.IsCancelled())
          front->push({Event::DONE, shared_from_this(), true, nullptr});
        break;
    }
    if (--pending == 0) release = std::move(self);
  }
  if (accepted) front->accept();
}

bool CallState::write(grpc::ByteBuffer message) {
  std::lock_guard<std::mutex> lock(mu);
  if (finishing || over) return false;
  queue(&message);
  send_next();
  return queued_bytes > kQueuedBytes;
}

// mu is held, for these two.
void CallState::queue(grpc::ByteBuffer* message) {
  queued_bytes += message->Length();
  writes.emplace_back();
  writes.back().Swap(message);
}

void CallState::drop_writes() {
  writes.clear();
  queued_bytes = 0;
}

// A request over max_message_bytes ends its call with RESOURCE_EXHAUSTED, and a delivered
// call's handler is cancelled ("done"). The limit is checked here, not by gRPC: gRPC 1.51 fails
// such a read the way a half-close ends one, so a streaming handler took it for the end of
// the requests (a sync connector started without its inputs), and it read the whole message
// before refusing it anyway.
void CallState::refuse_too_large() {
  if (finishing || over) {  // answered already (a streaming call may be), or over: no news
    reading.Clear();
    return;
  }
  status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "Received message larger than max (" + std::to_string(reading.Length()) +
                            " vs. " + std::to_string(front->max_message_bytes) + ")");
  reading.Clear();
  if (delivered) front->push({Event::DONE, shared_from_this(), true, nullptr});
  finishing = true;
  drop_writes();
  send_next();
}

// Backpressure for a streamed answer: Python, having queued many writes, asks to be told
// (a "drained" event) once few are left, or at once if that is so already or the call is over.
void CallState::notify_drained() {
  std::lock_guard<std::mutex> lock(mu);
  want_drained = true;
  drained_if_low();
}

void CallState::drained_if_low() {
  if (want_drained && (over || queued_bytes <= kDrainedBytes)) {
    want_drained = false;
    front->push({Event::DRAINED, shared_from_this(), false, nullptr});
  }
}

void CallState::finish(grpc::Status final_status,
                       std::vector<std::pair<std::string, std::string>> md,
                       grpc::ByteBuffer* last) {
  std::lock_guard<std::mutex> lock(mu);
  if (finishing || over) return;
  finishing = true;
  status = std::move(final_status);
  trailing = std::move(md);
  if (last != nullptr) {
    if (!writing && writes.empty() && status.ok()) {
      outgoing.Swap(last);
      last_message = true;
    } else {  // (WriteAndFinish wants an OK status and nothing else in flight)
      queue(last);
    }
  }
  send_next();
}

// The Python Call object is gone: a call it never finished ends as INTERNAL.
void CallState::drop() {
  {
    std::lock_guard<std::mutex> lock(mu);
    if (!delivered || finishing || over) return;
  }
  finish(grpc::Status(grpc::StatusCode::INTERNAL, kDropped), {});
}

// --- Front --------------------------------------------------------------------------------------

int Front::start() {
  std::lock_guard<std::mutex> lock(life_mu);
  if (stopped) return -2;
  if (started) return -1;
  auto new_service = std::make_unique<grpc::AsyncGenericService>();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(-1);  // checked by CallState::complete, see refuse_too_large
  builder.SetMaxSendMessageSize(max_message_bytes);
  builder.RegisterAsyncGenericService(new_service.get());
  auto new_cq = builder.AddCompletionQueue();
  auto new_server = builder.BuildAndStart();
  if (!new_server || port == 0) {
    if (new_server) new_server->Shutdown();
    new_cq->Shutdown();
    void* tag;
    bool ok;
    while (new_cq->Next(&tag, &ok)) {
    }
    return 0;
  }
  service = std::move(new_service);
  cq = std::move(new_cq);
  server = std::move(new_server);
  started = true;
  {
    std::unique_lock<std::shared_mutex> open(cq_mu);
    cq_open = accepting = true;
  }
  try {
    thread = std::thread([this] { run(); });
  } catch (...) {  // no thread to drain the CQ: stop here, and for good
    stopped = true;
    server->Shutdown();
    {
      std::unique_lock<std::shared_mutex> open(cq_mu);
      cq_open = accepting = false;
    }
    cq->Shutdown();
    void* tag;
    bool ok;
    while (cq->Next(&tag, &ok)) {
    }
    throw;
  }
  for (int i = 0; i < kAccepts; i++) accept();
  return port;
}

// Stops accepting, gives calls in flight `grace` seconds, then shuts the CQ down, drains it
// and joins its thread. Idempotent; a second caller waits for the first to be done.
void Front::shutdown(double grace) {
  std::lock_guard<std::mutex> lock(life_mu);
  if (stopped) return;
  stopped = true;
  if (!started) return;
  {
    std::unique_lock<std::shared_mutex> open(cq_mu);
    accepting = false;
  }
  if (!(grace > 0)) grace = 0;  // (and NaN)
  if (grace > 1e7) grace = 1e7;
  auto wait = std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::duration<double>(grace));
  server->Shutdown(std::chrono::system_clock::now() + wait);  // then every call has ended
  {
    std::unique_lock<std::shared_mutex> open(cq_mu);
    cq_open = false;
  }
  cq->Shutdown();
  if (thread.joinable()) thread.join();
}

// Arms one RequestCall.
void Front::accept() {
  auto call = std::make_shared<CallState>(shared_from_this());
  std::lock_guard<std::mutex> lock(call->mu);
  std::shared_lock<std::shared_mutex> open(cq_mu);
  if (!cq_open || !accepting) return;
  call->pending = 1;
  call->self = call;
  call->ctx.AsyncNotifyWhenDone(&call->done_tag);
  service->RequestCall(&call->ctx, &call->stream, cq.get(), cq.get(), &call->accept_tag);
}

void Front::push(Event event) {
  std::lock_guard<std::mutex> lock(events_mu);
  bool wake = events.empty();
  events.push_back(std::move(event));
  if (wake) {
    uint64_t one = 1;
    if (::write(efd, &one, sizeof one) < 0) {
    }  // (EAGAIN: the counter is full, so it is readable anyway)
  }
}

void Front::run() {
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) {
    Tag* t = static_cast<Tag*>(tag);
    t->call->complete(t->op, ok);
  }
}

// --- Python: Call ------------------------------------------------------------------------------

PyTypeObject* CallType;
PyTypeObject* ServerType;
PyObject* s_call;  // "call"
PyObject* s_message;  // "message"
PyObject* s_drained;  // "drained"
PyObject* s_done;  // "done"

struct CallObject {
  PyObject_HEAD
  std::shared_ptr<CallState> state;
};

// The call's Python object: the one Python already has, or a new one.
PyObject* call_object(const std::shared_ptr<CallState>& state) {
  if (state->py) {
    Py_INCREF(state->py);
    return state->py;
  }
  auto* self = reinterpret_cast<CallObject*>(CallType->tp_alloc(CallType, 0));
  if (!self) return nullptr;
  new (&self->state) std::shared_ptr<CallState>(state);
  state->py = reinterpret_cast<PyObject*>(self);
  return state->py;
}

void Call_dealloc(PyObject* obj) {
  auto* self = reinterpret_cast<CallObject*>(obj);
  PyTypeObject* type = Py_TYPE(obj);
  if (self->state) {
    self->state->py = nullptr;
    self->state->drop();
  }
  self->state.~shared_ptr();
  type->tp_free(obj);
  Py_DECREF(type);
}

PyObject* Call_write(PyObject* obj, PyObject* data) {
  auto* self = reinterpret_cast<CallObject*>(obj);
  Py_buffer view;
  if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) return nullptr;
  grpc::Slice slice(view.buf, static_cast<size_t>(view.len));  // a copy
  PyBuffer_Release(&view);
  return PyBool_FromLong(self->state->write(grpc::ByteBuffer(&slice, 1)));
}

PyObject* Call_notify_drained(PyObject* obj, PyObject*) {
  reinterpret_cast<CallObject*>(obj)->state->notify_drained();
  Py_RETURN_NONE;
}

bool legal_key(const std::string& key) {
  if (key.empty() || key.compare(0, 5, "grpc-") == 0) return false;
  for (char ch : key) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
          ch == '.'))
      return false;
  }
  return true;
}

bool legal_value(const std::string& value) {
  for (char ch : value) {
    if (ch < 0x20 || ch > 0x7e) return false;
  }
  return true;
}

bool is_bin(const std::string& key) {
  return key.size() >= 4 && key.compare(key.size() - 4, 4, "-bin") == 0;
}

// str (UTF-8) or bytes -> std::string; false with an exception set.
bool to_string(PyObject* obj, std::string* out) {
  const char* data;
  Py_ssize_t size;
  if (PyUnicode_Check(obj)) {
    data = PyUnicode_AsUTF8AndSize(obj, &size);
    if (!data) return false;
  } else if (PyBytes_Check(obj)) {
    data = PyBytes_AS_STRING(obj);
    size = PyBytes_GET_SIZE(obj);
  } else {
    PyErr_Format(PyExc_TypeError, "expected str or bytes, got %.100s", Py_TYPE(obj)->tp_name);
    return false;
  }
  out->assign(data, static_cast<size_t>(size));
  return true;
}

// The trailing metadata as finish() takes it; checked here, because libgrpc aborts the
// process on a key or value it finds illegal.
bool to_metadata(PyObject* obj, std::vector<std::pair<std::string, std::string>>* out) {
  PyObject* items = PySequence_Fast(obj, "trailing_metadata must be a list of (key, value)");
  if (!items) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject* item = PySequence_Fast_GET_ITEM(items, i);
    std::string key, value;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
      PyErr_Format(PyExc_TypeError, "trailing metadata item %zd is not a (key, value) tuple", i);
    } else if (!PyUnicode_Check(PyTuple_GET_ITEM(item, 0))) {
      PyErr_Format(PyExc_TypeError, "trailing metadata key %zd is not a str", i);
    } else if (to_string(PyTuple_GET_ITEM(item, 0), &key) &&
               to_string(PyTuple_GET_ITEM(item, 1), &value)) {
      if (!legal_key(key)) {
        PyErr_Format(PyExc_ValueError,
                     "illegal trailing metadata key %R: use lower-case a-z, 0-9, '-', '_' and "
                     "'.', not starting with 'grpc-'",
                     PyTuple_GET_ITEM(item, 0));
      } else if (!is_bin(key) && !legal_value(value)) {
        PyErr_Format(PyExc_ValueError,
                     "illegal value for trailing metadata key %R: printable ASCII only (or "
                     "name the key '...-bin' for binary values)",
                     PyTuple_GET_ITEM(item, 0));
      } else {
        out->emplace_back(std::move(key), std::move(value));
        continue;
      }
    }
    Py_DECREF(items);
    return false;
  }
  Py_DECREF(items);
  return true;
}

PyObject* Call_finish(PyObject* obj, PyObject* args) {
  auto* self = reinterpret_cast<CallObject*>(obj);
  int code;
  PyObject *details_obj, *trailing_obj, *last_obj = Py_None;
  if (!PyArg_ParseTuple(args, "iUO|O:finish", &code, &details_obj, &trailing_obj, &last_obj))
    return nullptr;
  if (code < 0 || code > 16) {
    PyErr_Format(PyExc_ValueError, "finish: %d is not a gRPC status code (0-16)", code);
    return nullptr;
  }
  std::string details;
  std::vector<std::pair<std::string, std::string>> trailing;
  if (!to_string(details_obj, &details) || !to_metadata(trailing_obj, &trailing))
    return nullptr;
  grpc::ByteBuffer last;
  if (last_obj != Py_None) {
    Py_buffer view;
    if (PyObject_GetBuffer(last_obj, &view, PyBUF_SIMPLE) < 0) return nullptr;
    grpc::Slice slice(view.buf, static_cast<size_t>(view.len));  // a copy
    PyBuffer_Release(&view);
    last = grpc::ByteBuffer(&slice, 1);
  }
  self->state->finish(grpc::Status(static_cast<grpc::StatusCode>(code), details),
                      std::move(trailing), last_obj != Py_None ? &last : nullptr);
  Py_RETURN_NONE;
}

PyObject* Call_peer(PyObject* obj, void*) {
  auto* self = reinterpret_cast<CallObject*>(obj);
  std::string peer = self->state->ctx.peer();
  return PyUnicode_DecodeLatin1(peer.data(), static_cast<Py_ssize_t>(peer.size()), nullptr);
}

PyMethodDef Call_methods[] = {
    {"write", Call_write, METH_O,
     "write(data: bytes) -> bool: queue one response message; True when the writes waiting "
     "are past 1 MiB and the caller should wait for 'drained' (a no-op, False, once finished "
     "or done)"},
    {"notify_drained", Call_notify_drained, METH_NOARGS,
     "notify_drained() -> None: a ('drained', call) event once at most 256 KiB of writes "
     "are left waiting"},
    {"finish", Call_finish, METH_VARARGS,
     "finish(code: int, details: str, trailing_metadata: list[tuple[str, str | bytes]], "
     "last: bytes | None = None) -> None: send the status (and a last message) after every "
     "queued write (no-op once finished or done)"},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef Call_getset[] = {
    {"peer", Call_peer, nullptr, "the client's address, e.g. 'ipv4:127.0.0.1:53422'", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyType_Slot Call_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(Call_dealloc)},
    {Py_tp_methods, Call_methods},
    {Py_tp_getset, Call_getset},
    {Py_tp_doc, const_cast<char*>("One gRPC call, as Server.events() delivers it.")},
    {0, nullptr},
};

PyType_Spec Call_spec = {
    "headwater.tasks._front.Call",
    sizeof(CallObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    Call_slots,
};

// --- Python: Server -----------------------------------------------------------------------------

struct ServerObject {
  PyObject_HEAD
  std::shared_ptr<Front> front;
};

PyObject* Server_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static const char* keywords[] = {"address", "max_message_bytes", "streaming", nullptr};
  const char* address;
  int max_message_bytes;
  PyObject* streaming_obj = nullptr;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "si|O:Server", const_cast<char**>(keywords),
                                   &address, &max_message_bytes, &streaming_obj))
    return nullptr;
  std::set<std::string> streaming;
  if (streaming_obj != nullptr) {
    PyObject* seq = PySequence_Fast(streaming_obj, "streaming: a sequence of method paths");
    if (!seq) return nullptr;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
      Py_ssize_t size;
      const char* text = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(seq, i), &size);
      if (!text) {
        Py_DECREF(seq);
        return nullptr;
      }
      streaming.emplace(text, static_cast<size_t>(size));
    }
    Py_DECREF(seq);
  }
  if (max_message_bytes <= 0) {
    PyErr_Format(PyExc_ValueError, "max_message_bytes must be positive, got %d",
                 max_message_bytes);
    return nullptr;
  }
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) return PyErr_SetFromErrno(PyExc_OSError);
  auto* self = reinterpret_cast<ServerObject*>(type->tp_alloc(type, 0));
  if (!self) {
    close(efd);
    return nullptr;
  }
  new (&self->front) std::shared_ptr<Front>();
  try {
    self->front = std::make_shared<Front>(address, max_message_bytes, efd, std::move(streaming));
  } catch (const std::exception&) {
    close(efd);
    Py_DECREF(self);
    return PyErr_NoMemory();
  }
  return reinterpret_cast<PyObject*>(self);
}

void Server_dealloc(PyObject* obj) {
  auto* self = reinterpret_cast<ServerObject*>(obj);
  PyTypeObject* type = Py_TYPE(obj);
  if (self->front) {
    Front* front = self->front.get();
    Py_BEGIN_ALLOW_THREADS
    front->shutdown(0);
    Py_END_ALLOW_THREADS
    // Undelivered events hold their calls, which hold the Front: let go of them.
    std::deque<Event> left;
    {
      std::lock_guard<std::mutex> lock(front->events_mu);
      left.swap(front->events);
    }
  }
  self->front.~shared_ptr();
  type->tp_free(obj);
  Py_DECREF(type);
}

PyObject* Server_start(PyObject* obj, PyObject*) {
  auto* self = reinterpret_cast<ServerObject*>(obj);
  int port;
  try {
    port = self->front->start();
  } catch (const std::exception& exc) {
    PyErr_Format(PyExc_RuntimeError, "cannot start the gRPC server: %s", exc.what());
    return nullptr;
  }
  if (port == -1) {
    PyErr_SetString(PyExc_RuntimeError, "the server is already started");
    return nullptr;
  }
  if (port == -2) {
    PyErr_SetString(PyExc_RuntimeError, "the server is shut down; make a new one");
    return nullptr;
  }
  if (port == 0) {
    PyErr_Format(PyExc_OSError, "cannot listen on %s", self->front->address.c_str());
    return nullptr;
  }
  return PyLong_FromLong(port);
}

PyObject* Server_fileno(PyObject* obj, PyObject*) {
  return PyLong_FromLong(reinterpret_cast<ServerObject*>(obj)->front->efd);
}

PyObject* Server_shutdown(PyObject* obj, PyObject* arg) {
  auto* self = reinterpret_cast<ServerObject*>(obj);
  double grace = PyFloat_AsDouble(arg);
  if (grace == -1.0 && PyErr_Occurred()) return nullptr;
  Front* front = self->front.get();
  Py_BEGIN_ALLOW_THREADS
  front->shutdown(grace);
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

// A tuple of these new references, or nullptr (and they are released) if any is nullptr.
PyObject* tuple_of(std::initializer_list<PyObject*> items) {
  PyObject* tuple = nullptr;
  bool complete = true;
  for (PyObject* item : items) complete = complete && item;
  if (complete) tuple = PyTuple_New(static_cast<Py_ssize_t>(items.size()));
  Py_ssize_t i = 0;
  for (PyObject* item : items) {
    if (tuple) {
      PyTuple_SET_ITEM(tuple, i++, item);
    } else {
      Py_XDECREF(item);
    }
  }
  return tuple;
}

PyObject* py_bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Valid() || !buffer.Dump(&slices).ok()) return PyBytes_FromStringAndSize("", 0);
  if (slices.size() == 1) {
    return PyBytes_FromStringAndSize(reinterpret_cast<const char*>(slices[0].begin()),
                                     static_cast<Py_ssize_t>(slices[0].size()));
  }
  size_t size = 0;
  for (auto& slice : slices) size += slice.size();
  PyObject* bytes = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(size));
  if (!bytes) return nullptr;
  char* at = PyBytes_AS_STRING(bytes);
  for (auto& slice : slices) {
    memcpy(at, slice.begin(), slice.size());
    at += slice.size();
  }
  return bytes;
}

PyObject* py_requests(CallState* call) {
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(call->requests.size()));
  if (!list) return nullptr;
  for (size_t i = 0; i < call->requests.size(); i++) {
    PyObject* bytes = py_bytes(call->requests[i]);
    if (!bytes) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), bytes);
  }
  return list;
}

PyObject* py_metadata(CallState* call) {
  const auto& metadata = call->ctx.client_metadata();
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(metadata.size()));
  if (!list) return nullptr;
  Py_ssize_t i = 0;
  for (const auto& [key, value] : metadata) {
    auto key_size = static_cast<Py_ssize_t>(key.size());
    auto value_size = static_cast<Py_ssize_t>(value.size());
    bool bin = key.size() >= 4 && memcmp(key.data() + key.size() - 4, "-bin", 4) == 0;
    PyObject* item =
        tuple_of({PyUnicode_DecodeLatin1(key.data(), key_size, nullptr),
                  bin ? PyBytes_FromStringAndSize(value.data(), value_size)
                      : PyUnicode_DecodeLatin1(value.data(), value_size, nullptr)});
    if (!item) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, i++, item);
  }
  return list;
}

PyObject* py_timeout(CallState* call) {
  gpr_timespec deadline = call->deadline;
  if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0) Py_RETURN_NONE;
  gpr_timespec left = gpr_time_sub(deadline, gpr_now(GPR_CLOCK_MONOTONIC));
  double seconds = static_cast<double>(left.tv_sec) + left.tv_nsec * 1e-9;
  return PyFloat_FromDouble(seconds > 0 ? seconds : 0.0);
}

PyObject* py_event(const Event& event) {
  CallState* call = event.call.get();
  if (event.kind == Event::DONE) {
    return tuple_of({Py_NewRef(s_done), call_object(event.call),
                     PyBool_FromLong(event.cancelled)});
  }
  if (event.kind == Event::DRAINED)
    return tuple_of({Py_NewRef(s_drained), call_object(event.call)});
  if (event.kind == Event::MESSAGE) {
    return tuple_of({Py_NewRef(s_message), call_object(event.call),
                     event.message ? py_bytes(*event.message) : Py_NewRef(Py_None)});
  }
  const std::string& method = call->ctx.method();
  PyObject* tuple = tuple_of({
      Py_NewRef(s_call),
      call_object(event.call),
      PyUnicode_DecodeLatin1(method.data(), static_cast<Py_ssize_t>(method.size()), nullptr),
      py_requests(call),
      py_metadata(call),
      py_timeout(call),
  });
  if (tuple) call->requests.clear();  // Python has its own copies now
  return tuple;
}

PyObject* Server_events(PyObject* obj, PyObject*) {
  Front* front = reinterpret_cast<ServerObject*>(obj)->front.get();
  std::deque<Event> batch;
  {
    std::lock_guard<std::mutex> lock(front->events_mu);
    batch.swap(front->events);
    uint64_t count;
    if (read(front->efd, &count, sizeof count) < 0) {
    }  // (EAGAIN: nothing was signalled)
  }
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(batch.size()));
  for (size_t i = 0; list && i < batch.size(); i++) {
    PyObject* item = py_event(batch[i]);
    if (!item) Py_CLEAR(list);
    else PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), item);
  }
  if (!list) {
    // Out of memory: put every event back for the next call (a "call" whose object was
    // made and lost meanwhile has been finished as dropped; it is delivered again).
    std::lock_guard<std::mutex> lock(front->events_mu);
    front->events.insert(front->events.begin(), std::make_move_iterator(batch.begin()),
                         std::make_move_iterator(batch.end()));
    uint64_t one = 1;
    if (!front->events.empty() && ::write(front->efd, &one, sizeof one) < 0) {
    }
    return nullptr;
  }
  return list;
}

PyMethodDef Server_methods[] = {
    {"start", Server_start, METH_NOARGS,
     "start() -> int: listen and serve; returns the port. OSError if it cannot listen."},
    {"fileno", Server_fileno, METH_NOARGS,
     "fileno() -> int: an eventfd, readable while events() has something"},
    {"events", Server_events, METH_NOARGS,
     "events() -> list: drain the queue of ('call', ...) and ('done', ...) events"},
    {"shutdown", Server_shutdown, METH_O,
     "shutdown(grace: float) -> None: stop accepting, give calls in flight `grace` seconds, "
     "then stop (idempotent)"},
    {nullptr, nullptr, 0, nullptr},
};

PyType_Slot Server_slots[] = {
    {Py_tp_new, reinterpret_cast<void*>(Server_new)},
    {Py_tp_dealloc, reinterpret_cast<void*>(Server_dealloc)},
    {Py_tp_methods, Server_methods},
    {Py_tp_doc,
     const_cast<char*>("Server(address, max_message_bytes): a gRPC server for every method, "
                       "driven from an event loop through fileno() and events().")},
    {0, nullptr},
};

PyType_Spec Server_spec = {
    "headwater.tasks._front.Server",
    sizeof(ServerObject),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    Server_slots,
};

PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "headwater.tasks._front",
    "The task connectors' gRPC front end on libgrpc++ (see _front.cc and front.py).",
    -1,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
    nullptr,
};

}  // namespace

PyMODINIT_FUNC PyInit__front() {
  if (!CallType) {
    CallType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&Call_spec));
    ServerType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&Server_spec));
    s_call = PyUnicode_InternFromString("call");
    s_message = PyUnicode_InternFromString("message");
    s_drained = PyUnicode_InternFromString("drained");
    s_done = PyUnicode_InternFromString("done");
    if (!CallType || !ServerType || !s_call || !s_message || !s_drained || !s_done)
      return nullptr;
  }
  PyObject* module = PyModule_Create(&module_def);
  if (!module) return nullptr;
  if (PyModule_AddObjectRef(module, "Server", reinterpret_cast<PyObject*>(ServerType)) < 0 ||
      PyModule_AddObjectRef(module, "Call", reinterpret_cast<PyObject*>(CallType)) < 0) {
    Py_DECREF(module);
    return nullptr;
  }
  return module;
}
