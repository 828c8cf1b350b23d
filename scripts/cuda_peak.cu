// Prints the device's properties and its peak dense bf16 tensor-core FLOP/s, computed from the
// properties (not looked up by product name):
//   peak = SM count x max SM clock x dense bf16 FLOPs per SM per clock (by compute capability).
// FLOPs/SM/clock (dense, f32 accumulation; one FMA = 2 FLOPs), from the architecture whitepapers:
//   7.x (Volta/Turing, fp16 only: bf16 unsupported) 1024; 8.0 (A100) 2048; 8.6/8.7/8.9 (GA10x/Ada,
//   full-rate f32 accumulation as on the data-centre parts) 1024; 9.0 (Hopper) 4096;
//   10.x/12.x (Blackwell) 8192 (10.x) / 4096 (12.x).
// The clock is the maximum SM clock the driver reports (cudaDevAttrClockRate), so the peak is an
// upper bound: NVIDIA's own figures use the boost clock, a little lower on some parts (H100 SXM:
// 1980 MHz here, 989 TFLOP/s in the datasheet at 1830 MHz), so MFU against it is conservative.
//
// Build and run: nvcc -o /tmp/cuda_peak scripts/cuda_peak.cu && /tmp/cuda_peak
// Output lines: "device name=...", "device sm_count=N clock_khz=K cc=X.Y bf16_flops_per_sm_clk=F",
// "device peak_bf16_flops=P".
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

static int per_sm(int major, int minor) {
  if (major == 7) return 1024;
  if (major == 8) return minor == 0 ? 2048 : 1024;
  if (major == 9) return 4096;
  if (major == 10 || major == 11) return 8192;
  if (major == 12) return 4096;
  return 0;
}

int main(int argc, char** argv) {
  int dev = argc > 1 ? std::atoi(argv[1]) : 0;
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("device none\n");
    return 1;
  }
  cudaDeviceProp p;
  if (cudaGetDeviceProperties(&p, dev) != cudaSuccess) return 1;
  int clock_khz = 0, sms = 0, major = 0, minor = 0;
  cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
  const int f = per_sm(major, minor);
  const double peak = double(sms) * double(clock_khz) * 1e3 * double(f);
  std::printf("device name=%s\n", p.name);
  std::printf("device sm_count=%d clock_khz=%d cc=%d.%d bf16_flops_per_sm_clk=%d memory_gib=%.1f\n", sms, clock_khz,
              major, minor, f, double(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  std::printf("device peak_bf16_flops=%.4e\n", peak);
  return f > 0 ? 0 : 2;
}
