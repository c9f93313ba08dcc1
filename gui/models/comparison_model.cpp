#include "gui/models/comparison_model.hpp"
