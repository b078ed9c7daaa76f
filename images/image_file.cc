#include "images/image_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "base/crc32c.h"
#include "base/file_util.h"

namespace lz::img {

const char* ImageKindName(ImageKind kind) {
  switch (kind) {
    case ImageKind::kInventory:
      return "inventory";
    case ImageKind::kCore:
      return "core";
    case ImageKind::kMm:
      return "mm";
    case ImageKind::kFds:
      return "fds";
    case ImageKind::kPagemap:
      return "pagemap";
    case ImageKind::kPages:
      return "pages";
    case ImageKind::kStats:
      return "stats";
    case ImageKind::kShmem:
      return "shmem";
    case ImageKind::kWorkingSet:
      return "working-set";
  }
  return "unknown";
}

FileHeader MakeHeader(ImageKind kind) {
  FileHeader h{kFileMagic, static_cast<uint32_t>(kind), kFormatVersion, 0};
  h.header_crc = Crc32c(&h, offsetof(FileHeader, header_crc));
  return h;
}

Status CheckHeader(const FileHeader& h, const std::string& name,
                   std::optional<ImageKind> expected) {
  if (h.magic != kFileMagic) {
    return Invalid(name + ": not a lazarus image (bad magic at offset 0)");
  }
  if (h.header_crc != Crc32c(&h, offsetof(FileHeader, header_crc))) {
    return Invalid(name + ": corrupt header (checksum mismatch at offset 0)");
  }
  if (h.version != kFormatVersion) {
    return Invalid(name + ": image format version " + std::to_string(h.version) +
                   ", this lazarus reads version " + std::to_string(kFormatVersion));
  }
  if (expected && h.kind != static_cast<uint32_t>(*expected)) {
    return Invalid(name + ": is a " + ImageKindName(static_cast<ImageKind>(h.kind)) +
                   " image, expected " + ImageKindName(*expected));
  }
  if (h.kind < 1 || h.kind > static_cast<uint32_t>(ImageKind::kWorkingSet)) {
    return Invalid(name + ": unknown image kind " + std::to_string(h.kind));
  }
  return Ok();
}

Result<RecordWriter> RecordWriter::Create(const std::string& path, ImageKind kind) {
  LZ_ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path + ".tmp", O_WRONLY | O_CREAT | O_TRUNC));
  RecordWriter w(path, std::move(fd));
  FileHeader h = MakeHeader(kind);
  w.buf_.append(reinterpret_cast<const char*>(&h), sizeof h);
  return w;
}

Status RecordWriter::AppendBytes(std::string_view payload) {
  if (payload.size() > kMaxRecordBytes) {
    return Invalid("write " + path_,
                   "record of " + std::to_string(payload.size()) + " bytes exceeds the limit");
  }
  RecordHeader rh{static_cast<uint32_t>(payload.size()), Crc32c(payload.data(), payload.size())};
  buf_.append(reinterpret_cast<const char*>(&rh), sizeof rh);
  buf_.append(payload);
  if (buf_.size() >= (1u << 20)) {
    return Flush();
  }
  return Ok();
}

Status RecordWriter::Append(const google::protobuf::MessageLite& msg) {
  std::string payload;
  if (!msg.SerializeToString(&payload)) {
    return Invalid("serialize", msg.GetTypeName() + " for " + path_);
  }
  return AppendBytes(payload);
}

Status RecordWriter::Flush() {
  LZ_TRY_CTX(WriteAll(fd_.get(), buf_), path_);
  buf_.clear();
  return Ok();
}

Status RecordWriter::Finish() {
  LZ_TRY(Flush());
  LZ_TRY_CTX(std::move(fd_).Close(), path_);
  std::string tmp = path_ + ".tmp";
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    return FailErrno("rename", tmp);
  }
  return Ok();
}

Result<RecordReader> RecordReader::Open(const std::string& path, ImageKind expected) {
  auto bytes = ReadFileToString(path, size_t{1} << 31);
  if (!bytes) {
    return Unexpected{std::move(bytes).error()};
  }
  return FromBytes(path, std::move(*bytes), expected);
}

Result<RecordReader> RecordReader::FromBytes(std::string name, std::string bytes,
                                             std::optional<ImageKind> expected) {
  if (bytes.size() < sizeof(FileHeader)) {
    return Invalid(name + ": truncated header (" + std::to_string(bytes.size()) +
                   " bytes at offset 0)");
  }
  FileHeader h;
  std::memcpy(&h, bytes.data(), sizeof h);
  LZ_TRY(CheckHeader(h, name, expected));
  RecordReader r(std::move(name), std::move(bytes));
  r.pos_ = sizeof(FileHeader);
  r.kind_ = static_cast<ImageKind>(h.kind);
  return r;
}

Unexpected RecordReader::Corrupt(const std::string& what, uint64_t offset) const {
  return Invalid(name_ + ": " + what + " at offset " + std::to_string(offset));
}

Result<std::optional<std::string_view>> RecordReader::Next() {
  if (pos_ == data_.size()) {
    return std::optional<std::string_view>();
  }
  size_t left = data_.size() - pos_;
  if (left < sizeof(RecordHeader)) {
    return Corrupt("truncated record header", pos_);
  }
  RecordHeader rh;
  std::memcpy(&rh, data_.data() + pos_, sizeof rh);
  if (rh.length > kMaxRecordBytes) {
    return Corrupt("record length " + std::to_string(rh.length) + " too large", pos_);
  }
  if (rh.length > left - sizeof rh) {
    return Corrupt("truncated record (" + std::to_string(rh.length) + " bytes announced, " +
                       std::to_string(left - sizeof rh) + " left)",
                   pos_);
  }
  std::string_view payload(data_.data() + pos_ + sizeof rh, rh.length);
  if (Crc32c(payload.data(), payload.size()) != rh.crc) {
    return Corrupt("record checksum mismatch", pos_);
  }
  pos_ += sizeof rh + rh.length;
  return std::optional<std::string_view>(payload);
}

Result<bool> RecordReader::NextMessage(google::protobuf::MessageLite* msg) {
  size_t at = pos_;
  LZ_ASSIGN_OR_RETURN(auto payload, Next());
  if (!payload) {
    return false;
  }
  if (!msg->ParseFromArray(payload->data(), static_cast<int>(payload->size()))) {
    return Corrupt("undecodable " + msg->GetTypeName() + " record", at);
  }
  return true;
}

Status WriteSingleMessage(const std::string& path, ImageKind kind,
                          const google::protobuf::MessageLite& msg) {
  LZ_ASSIGN_OR_RETURN(RecordWriter w, RecordWriter::Create(path, kind));
  LZ_TRY(w.Append(msg));
  return w.Finish();
}

Status ReadSingleMessage(const std::string& path, ImageKind kind,
                         google::protobuf::MessageLite* msg) {
  LZ_ASSIGN_OR_RETURN(RecordReader r, RecordReader::Open(path, kind));
  LZ_ASSIGN_OR_RETURN(bool got, r.NextMessage(msg));
  if (!got) {
    return Invalid(path + ": empty image (no record)");
  }
  LZ_ASSIGN_OR_RETURN(auto extra, r.Next());
  if (extra) {
    return Invalid(path + ": unexpected extra record");
  }
  return Ok();
}

}  // namespace lz::img
