#include "scion/activations.h"

namespace scion::nn {
namespace {
thread_local ActivationRecord* current = nullptr;
}  // namespace

RecordActivations::RecordActivations(ActivationRecord& record) : previous_(current) { current = &record; }
RecordActivations::~RecordActivations() { current = previous_; }
ActivationRecord* activation_record() { return current; }

}  // namespace scion::nn
