#include "gui/models/breakdown_model.hpp"
