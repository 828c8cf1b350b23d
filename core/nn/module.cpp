#include <unordered_map>
#include <unordered_set>

#include "scion/autograd.h"
#include "scion/nn.h"

namespace scion::nn {

namespace {
std::string join(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}
}  // namespace

void Module::register_parameter(const std::string& name, Tensor* slot, Tensor value) {
  SCION_CHECK(value.defined(), "register_parameter: '", name, "' is undefined");
  SCION_CHECK(is_floating(value.dtype()), "register_parameter: '", name, "' must be floating, got ", value.desc());
  *slot = value.detach();
  slot->set_requires_grad(true);
  entries_.push_back({name, slot, nullptr});
}

void Module::register_buffer(const std::string& name, Tensor* slot) { entries_.push_back({name, slot, nullptr, true}); }

std::vector<std::pair<std::string, Tensor*>> Module::named_parameter_slots(const std::string& prefix) {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& e : entries_) {
    if (e.param) {
      if (!e.buffer) out.emplace_back(join(prefix, e.name), e.param);
    } else {
      auto sub = e.child->named_parameter_slots(join(prefix, e.name));
      out.insert(out.end(), sub.begin(), sub.end());
    }
  }
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::named_buffer_slots(const std::string& prefix) {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& e : entries_) {
    if (e.param) {
      if (e.buffer) out.emplace_back(join(prefix, e.name), e.param);
    } else {
      auto sub = e.child->named_buffer_slots(join(prefix, e.name));
      out.insert(out.end(), sub.begin(), sub.end());
    }
  }
  return out;
}

NamedTensors Module::named_buffers(const std::string& prefix) const {
  NamedTensors out;
  for (auto& [name, slot] : const_cast<Module*>(this)->named_buffer_slots(prefix))
    if (slot->defined()) out.emplace_back(name, *slot);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out = named_parameters();
  for (auto& b : named_buffers()) out.push_back(std::move(b));
  return out;
}

NamedTensors Module::named_parameters(const std::string& prefix) const {
  NamedTensors out;
  for (auto& [name, slot] : const_cast<Module*>(this)->named_parameter_slots(prefix)) out.emplace_back(name, *slot);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::load_state_dict(const NamedTensors& state, bool strict) {
  auto slots = named_parameter_slots();
  std::unordered_map<std::string, Tensor*> by_name;
  for (auto& [name, slot] : slots) by_name[name] = slot;
  std::unordered_map<std::string, Tensor*> buffers;
  for (auto& [name, slot] : named_buffer_slots()) buffers[name] = slot;
  std::unordered_set<std::string> seen;
  std::string missing, unexpected;
  // Check everything before writing anything: a failed load leaves the module untouched.
  for (auto& [name, value] : state) {
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      if (!buffers.count(name)) unexpected += (unexpected.empty() ? "" : ", ") + name;
      continue;
    }
    SCION_CHECK(value.shape() == it->second->shape(), "load_state_dict: '", name, "' has shape ",
                shape_str(value.shape()), " in the checkpoint but ", shape_str(it->second->shape()), " in the model");
    seen.insert(name);
  }
  for (auto& [name, slot] : slots)
    if (!seen.count(name)) missing += (missing.empty() ? "" : ", ") + name;
  if (strict) {
    SCION_CHECK(missing.empty(), "load_state_dict: missing keys: ", missing);
    SCION_CHECK(unexpected.empty(), "load_state_dict: unexpected keys: ", unexpected);
  }
  NoGradGuard g;
  if (strict)
    for (auto& [name, slot] : buffers) *slot = Tensor();
  for (auto& [name, value] : state) {
    auto it = by_name.find(name);
    if (it != by_name.end()) it->second->copy_(value);
    auto b = buffers.find(name);
    if (b != buffers.end()) *b->second = value.detach().contiguous().clone();
  }
}

void Module::zero_grad() {
  for (auto& [name, slot] : named_parameter_slots()) slot->zero_grad();
}

void Module::to(Device device) {
  auto move = [&](Tensor* slot) {
    if (!slot->defined() || slot->device() == device) return;
    const bool rg = slot->requires_grad();
    const Tensor g = slot->grad();
    Tensor moved = slot->detach().to(device);
    if (rg) moved.set_requires_grad(true);
    if (g.defined()) moved.set_grad(g.detach().to(device));
    *slot = moved;
  };
  for (auto& [name, slot] : named_parameter_slots()) move(slot);
  for (auto& [name, slot] : named_buffer_slots()) move(slot);
}

void Module::replace_parameter(const std::string& dotted_name, const Tensor& value) {
  for (auto& [name, slot] : named_parameter_slots()) {
    if (name == dotted_name) {
      *slot = value.detach();
      slot->set_requires_grad(true);
      return;
    }
  }
  throw Error("replace_parameter: no parameter named '" + dotted_name + "'");
}

Tensor Module::parameter(const std::string& dotted_name) const {
  for (auto& [name, t] : named_parameters())
    if (name == dotted_name) return t;
  throw Error("parameter: no parameter named '" + dotted_name + "'");
}

void Module::set_training(bool training) {
  training_ = training;
  for (auto& e : entries_)
    if (e.child) e.child->set_training(training);
}

}  // namespace scion::nn
