// Status codes returned by every native function. Native code never throws
// across the N-API boundary, never aborts and never exits: it returns one of
// these, and the N-API layer turns it into a JavaScript error.
#pragma once

namespace vlatext {

enum class Status {
  Ok = 0,
  InvalidArgument,
  OutOfMemory,
  NoDevice,     // CUDA requested but no device is present
  DeviceError,  // a CUDA call failed
  Cancelled,
  ThreadError,  // the OS refused to start a worker thread
  InvalidState, // the handle was disposed, or an async call on it is still running
};

inline const char* status_message(Status s) {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::InvalidArgument: return "invalid argument";
    case Status::OutOfMemory: return "out of memory";
    case Status::NoDevice: return "no CUDA device is available";
    case Status::DeviceError: return "a CUDA call failed";
    case Status::Cancelled: return "cancelled";
    case Status::ThreadError: return "could not start a worker thread";
    case Status::InvalidState: return "the handle is disposed or busy";
  }
  return "unknown status";
}

// A stable name for each status (the N-API layer puts it on the JavaScript error as `status`).
inline const char* status_name(Status s) {
  switch (s) {
    case Status::Ok: return "Ok";
    case Status::InvalidArgument: return "InvalidArgument";
    case Status::OutOfMemory: return "OutOfMemory";
    case Status::NoDevice: return "NoDevice";
    case Status::DeviceError: return "DeviceError";
    case Status::Cancelled: return "Cancelled";
    case Status::ThreadError: return "ThreadError";
    case Status::InvalidState: return "InvalidState";
  }
  return "Unknown";
}

}  // namespace vlatext
