// Errors as values. Result<T> follows std::expected's names (has_value, value, error,
// operator*, operator->) so that it can become an alias once the toolchain offers <expected>
// in C++20 mode; g++ 12 only has it with -std=c++2b.
#pragma once

#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace lz {

/// One failure: the errno (0 when it is not a system error), the step that failed and what it
/// was working on. Message() renders "op context: strerror(code)".
struct Error {
  int code = 0;
  std::string op;
  std::string context;

  std::string Message() const;
  /// Returns a copy whose message is prefixed by `outer` ("restore pid 12: " + inner).
  Error Wrap(const std::string& outer) const;
};

/// Carrier for the error branch, like std::unexpected.
struct Unexpected {
  Error error;
};

[[nodiscard]] inline Unexpected Fail(int code, std::string op, std::string context = {}) {
  return Unexpected{Error{code, std::move(op), std::move(context)}};
}
/// A failure that is not a system error (bad image, bad argument).
[[nodiscard]] inline Unexpected Invalid(std::string op, std::string context = {}) {
  return Fail(0, std::move(op), std::move(context));
}
/// Fail with the current errno; call it on the line right after the failing call.
[[nodiscard]] inline Unexpected FailErrno(std::string op, std::string context = {}) {
  return Fail(errno, std::move(op), std::move(context));
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Unexpected u) : v_(std::in_place_index<1>, std::move(u.error)) {}
  template <class U>
  requires std::is_constructible_v<T, U&&> &&
      (!std::is_same_v<std::decay_t<U>, Result>)&&(!std::is_same_v<std::decay_t<U>, Unexpected>)&&(
          !std::is_same_v<std::decay_t<U>, T>)Result(U&& u)
      : v_(std::in_place_index<0>, T(std::forward<U>(u))) {}

  bool has_value() const { return v_.index() == 0; }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Unexpected u) : error_(std::move(u.error)), ok_(false) {}
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const {}
  const Error& error() const& { return error_; }
  Error&& error() && { return std::move(error_); }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status Ok() { return {}; }

}  // namespace lz

#define LZ_CONCAT_INNER(a, b) a##b
#define LZ_CONCAT(a, b) LZ_CONCAT_INNER(a, b)

/// Returns the error of `expr` (a Result) from the enclosing function.
#define LZ_TRY(expr)                                         \
  do {                                                       \
    auto&& lz_try_r_ = (expr);                               \
    if (!lz_try_r_) {                                        \
      return ::lz::Unexpected{std::move(lz_try_r_).error()}; \
    }                                                        \
  } while (0)

/// Like LZ_TRY, but prefixes the error with `outer` (a std::string expression).
#define LZ_TRY_CTX(expr, outer)                               \
  do {                                                        \
    auto&& lz_try_r_ = (expr);                                \
    if (!lz_try_r_) {                                         \
      return ::lz::Unexpected{lz_try_r_.error().Wrap(outer)}; \
    }                                                         \
  } while (0)

/// `LZ_ASSIGN_OR_RETURN(auto x, F());` declares x from the value of F() or returns its error.
#define LZ_ASSIGN_OR_RETURN(lhs, expr) \
  LZ_ASSIGN_OR_RETURN_IMPL(LZ_CONCAT(lz_r_, __LINE__), lhs, expr)
#define LZ_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr)     \
  auto tmp = (expr);                                 \
  if (!tmp) {                                        \
    return ::lz::Unexpected{std::move(tmp).error()}; \
  }                                                  \
  lhs = std::move(tmp).value()
