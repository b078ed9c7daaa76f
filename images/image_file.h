// Record images: a FileHeader then length+CRC framed records (protobuf messages).
#pragma once

#include <google/protobuf/message_lite.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "images/format.h"

namespace lz::img {

/// Appends records to a new image file. Not thread-safe. The file is written under a
/// temporary name and renamed by Finish(), so a reader never sees half a file.
class RecordWriter {
 public:
  [[nodiscard]] static Result<RecordWriter> Create(const std::string& path, ImageKind kind);
  [[nodiscard]] Status Append(const google::protobuf::MessageLite& msg);
  [[nodiscard]] Status AppendBytes(std::string_view payload);
  [[nodiscard]] Status Finish();

 private:
  RecordWriter(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  Status Flush();
  std::string path_;
  UniqueFd fd_;
  std::string buf_;
};

/// Reads the records of an image file held in memory. Every size is checked against the
/// bytes that remain before anything is allocated; errors name the file and the offset.
class RecordReader {
 public:
  /// Reads and validates the header. `expected` is the kind the caller wants.
  [[nodiscard]] static Result<RecordReader> Open(const std::string& path, ImageKind expected);
  /// Same, on bytes already in memory (`name` appears in errors). Used by the fuzzer.
  [[nodiscard]] static Result<RecordReader> FromBytes(std::string name, std::string bytes,
                                                      std::optional<ImageKind> expected);
  ImageKind kind() const { return kind_; }
  /// Next record's payload, nullopt at a clean end of file.
  [[nodiscard]] Result<std::optional<std::string_view>> Next();
  /// Next record parsed into `msg`; false at a clean end of file.
  [[nodiscard]] Result<bool> NextMessage(google::protobuf::MessageLite* msg);

 private:
  RecordReader(std::string name, std::string bytes)
      : name_(std::move(name)), data_(std::move(bytes)) {}
  Unexpected Corrupt(const std::string& what, uint64_t offset) const;
  std::string name_;
  std::string data_;
  size_t pos_ = 0;
  ImageKind kind_ = ImageKind::kInventory;
};

/// Validates a FileHeader; shared with the page store.
[[nodiscard]] Status CheckHeader(const FileHeader& h, const std::string& name,
                                 std::optional<ImageKind> expected);
FileHeader MakeHeader(ImageKind kind);

/// Writes a file of exactly one record.
[[nodiscard]] Status WriteSingleMessage(const std::string& path, ImageKind kind,
                                        const google::protobuf::MessageLite& msg);
/// Reads a file that must hold exactly one record of `msg`'s type.
[[nodiscard]] Status ReadSingleMessage(const std::string& path, ImageKind kind,
                                       google::protobuf::MessageLite* msg);

}  // namespace lz::img
