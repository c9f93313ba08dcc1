#include "gui/models/runs_model.hpp"
