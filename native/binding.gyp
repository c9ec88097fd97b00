{
  "targets": [
    {
      "target_name": "sll_native",
      "sources": ["src/addon.cc", "src/kernels.cc", "src/conv.cc", "src/fused.cc"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags": ["-O3", "-fno-math-errno", "-fno-trapping-math"],
      "cflags_cc": ["-O3", "-std=c++17", "-fno-math-errno", "-fno-trapping-math"],
      "defines": ["NAPI_VERSION=8"],
      "libraries": ["-lopenblas"],
      "conditions": [
        ["target_arch=='x64'", {
          "cflags": ["-mavx2", "-mfma"],
          "cflags_cc": ["-mavx2", "-mfma"]
        }]
      ]
    }
  ]
}
