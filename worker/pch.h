// Precompiled header for every LibTorch translation unit (see worker/CMakeLists.txt).
#pragma once
#include <torch/torch.h>
