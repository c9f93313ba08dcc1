#include "gui/plan_view.hpp"
