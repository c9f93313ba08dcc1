#include "gui/models/plan_table_model.hpp"
