#include "gui/models/reject_reasons_model.hpp"
