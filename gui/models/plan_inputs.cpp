#include "gui/models/plan_inputs.hpp"
