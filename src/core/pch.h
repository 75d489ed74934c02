// Precompiled header: the heavy, stable includes shared by every TU.
#pragma once
#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <fmt/format.h>
#include <map>
#include <string>
#include <vector>
