// A small JSON value with a parser (errors carry line and column) and a writer. Used for
// safetensors headers, training state, metrics lines and model configs.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace scion {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json>;  // sorted keys: stable output

  Json() : v_(nullptr) {}
  Json(std::nullptr_t) : v_(nullptr) {}
  Json(bool b) : v_(b) {}
  Json(int v) : v_(double(v)) {}
  Json(int64_t v) : v_(double(v)) {}
  Json(uint64_t v) : v_(double(v)) {}
  Json(double v) : v_(v) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}

  // `what` names the source in error messages (a file name).
  static Json parse(std::string_view text, const std::string& what = "JSON");
  std::string dump() const;  // compact, one line

  bool is_null() const { return std::holds_alternative<std::nullptr_t>(v_); }
  bool is_bool() const { return std::holds_alternative<bool>(v_); }
  bool is_number() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return std::holds_alternative<std::string>(v_); }
  bool is_array() const { return std::holds_alternative<Array>(v_); }
  bool is_object() const { return std::holds_alternative<Object>(v_); }

  bool as_bool() const;
  double as_number() const;
  int64_t as_int() const;  // throws unless the number is integral
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  bool contains(const std::string& key) const;
  const Json& at(const std::string& key) const;  // throws naming the key
  Json& operator[](const std::string& key);      // makes an object of null
  const Json& at(size_t i) const;

 private:
  std::variant<std::nullptr_t, bool, double, std::string, Array, Object> v_;
};

}  // namespace scion
